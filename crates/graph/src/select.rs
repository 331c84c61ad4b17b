//! Building request paths with `$select` and other query options.

/// Properties a user sync needs by default.
pub const USER_SELECT: &[&str] = &[
    "id",
    "displayName",
    "givenName",
    "surname",
    "userPrincipalName",
    "mail",
    "jobTitle",
    "department",
    "companyName",
    "officeLocation",
    "mobilePhone",
    "businessPhones",
    "accountEnabled",
    "userType",
    "usageLocation",
    "employeeId",
    "onPremisesImmutableId",
    "onPremisesSamAccountName",
    "onPremisesSyncEnabled",
    "createdDateTime",
    "assignedLicenses",
];

/// Properties a group sync needs by default.
pub const GROUP_SELECT: &[&str] = &[
    "id",
    "displayName",
    "description",
    "mail",
    "mailEnabled",
    "securityEnabled",
    "groupTypes",
    "visibility",
];

/// A path with query options, e.g. `Query::new("/users").select(&["id"]).top(999)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    path: String,
    options: Vec<(String, String)>,
}

impl Query {
    pub fn new(path: impl Into<String>) -> Self {
        Query {
            path: path.into(),
            options: Vec::new(),
        }
    }

    /// `$select` with the given properties, de-duplicated in first-seen order.
    pub fn select<S: AsRef<str>>(mut self, properties: &[S]) -> Self {
        let mut seen: Vec<&str> = Vec::new();
        for property in properties {
            let property = property.as_ref().trim();
            if !property.is_empty() && !seen.contains(&property) {
                seen.push(property);
            }
        }
        if !seen.is_empty() {
            self.options.push(("$select".into(), seen.join(",")));
        }
        self
    }

    pub fn top(mut self, top: u32) -> Self {
        self.options.push(("$top".into(), top.to_string()));
        self
    }

    pub fn filter(self, filter: &str) -> Self {
        self.option("$filter", filter)
    }

    pub fn expand(self, expand: &str) -> Self {
        self.option("$expand", expand)
    }

    pub fn option(mut self, name: &str, value: &str) -> Self {
        self.options.push((name.to_string(), value.to_string()));
        self
    }

    /// The path and query; values are percent-encoded, `$`, `,`, `(`, `)` and `=` are kept readable.
    pub fn build(&self) -> String {
        if self.options.is_empty() {
            return self.path.clone();
        }
        let query: Vec<String> = self
            .options
            .iter()
            .map(|(k, v)| format!("{k}={}", encode_value(v)))
            .collect();
        let separator = if self.path.contains('?') { '&' } else { '?' };
        format!("{}{separator}{}", self.path, query.join("&"))
    }
}

impl std::fmt::Display for Query {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.build())
    }
}

fn encode_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        match byte {
            b'A'..=b'Z'
            | b'a'..=b'z'
            | b'0'..=b'9'
            | b'-'
            | b'.'
            | b'_'
            | b'~'
            | b'$'
            | b','
            | b'('
            | b')'
            | b'='
            | b'\''
            | b';'
            | b':'
            | b'/' => out.push(char::from(byte)),
            b' ' => out.push_str("%20"),
            other => out.push_str(&format!("%{other:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_readable_queries() {
        let query = Query::new("/users").select(&["id", "displayName", "id"]).top(999);
        assert_eq!(query.build(), "/users?$select=id,displayName&$top=999");
        let delta = Query::new("/groups/delta").select(&["id", "members"]);
        assert_eq!(delta.to_string(), "/groups/delta?$select=id,members");
        let filtered = Query::new("/users")
            .filter("userType eq 'Member'")
            .expand("manager($select=id)");
        assert_eq!(
            filtered.build(),
            "/users?$filter=userType%20eq%20'Member'&$expand=manager($select=id)"
        );
        assert_eq!(Query::new("/organization").build(), "/organization");
        assert_eq!(
            Query::new("/users/delta?$deltatoken=latest")
                .select(&["id"])
                .build(),
            "/users/delta?$deltatoken=latest&$select=id"
        );
        assert_eq!(Query::new("/x").filter("a&b#c").build(), "/x?$filter=a%26b%23c");
    }
}
