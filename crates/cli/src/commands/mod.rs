pub mod directory;
pub mod keys;
pub mod migrate;
