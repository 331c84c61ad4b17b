use serde::{Deserialize, Serialize};

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub i64);

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, "{}", self.0)
            }
        }
    };
}

id_type!(
    /// A configured connection to one upstream system (an Entra tenant, a partner centre, …).
    ConnectionId
);
id_type!(
    /// One sync run (full, delta, preview) of a connection.
    RunId
);
id_type!(
    /// The primary key of a desk record in the store (a user, a site, a licence, …).
    RecordId
);
