//! (being written) deskbridge-emulator: Microsoft's identity platform and Graph, emulated.
pub mod cli;
