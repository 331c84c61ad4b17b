pub mod bench;
pub mod connection;
pub mod demo;
pub mod directory;
pub mod keys;
pub mod mappings;
pub mod migrate;
pub mod sync;
