//! End-to-end tests: every test packs a real application with the real `pyferry` binary and
//! runs the executable as a subprocess, checking exit status and output.

mod archive_fs;
mod bad_input;
mod basics;
mod children;
mod chroot;
mod hostile;
mod importer;
mod isolation;
mod load;
mod native;
mod packer;
mod portable;
mod python_parity;
mod pyz;
mod read_by_path;
mod real_files;
mod sbom;
mod wheel;
