pub use deskbridge_testkit::TestDb;
