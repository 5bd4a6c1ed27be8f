//! One module per `pyferry` subcommand.

pub mod build_runtime;
pub mod pack;
