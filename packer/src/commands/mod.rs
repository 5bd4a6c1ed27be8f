//! One module per `pyferry` subcommand.

pub mod build_runtime;
pub mod inspect;
pub mod pack;
pub mod verify;
