//! `$filter` for the emulator: a thin adapter over the shared `deskbridge-odata` parser and
//! evaluator, adding what Graph's directory endpoints need on top (advanced-query detection,
//! the id lists delta accepts, and evaluation against lazily computed properties).
use deskbridge_odata::{BinaryOp, EvalOptions, Feature, Function, Literal};
use serde_json::{Map, Value};

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Expr(deskbridge_odata::Expr);

pub(crate) fn parse(input: &str) -> Result<Expr, String> {
    deskbridge_odata::parse(input)
        .map(Expr)
        .map_err(|e| e.to_string())
}

impl Expr {
    /// `ne`, `not`, `endswith`, `contains` and `eq null` are "advanced queries": Graph wants
    /// `ConsistencyLevel: eventual` (and `$count=true`) for them.
    pub(crate) fn is_advanced(&self) -> bool {
        let mut null_compare = false;
        self.0.walk(&mut |e| {
            if let deskbridge_odata::Expr::Binary {
                op: BinaryOp::Eq | BinaryOp::Ne,
                right,
                ..
            } = e
                && matches!(**right, deskbridge_odata::Expr::Literal(Literal::Null))
            {
                null_compare = true;
            }
        });
        let functions = self.0.functions();
        self.0.uses(Feature::Not)
            || self.0.operators().contains(&BinaryOp::Ne)
            || functions.contains(&Function::EndsWith)
            || functions.contains(&Function::Contains)
            || null_compare
    }

    /// Top-level property names the filter reads (for validation and permission checks).
    pub(crate) fn properties(&self, out: &mut Vec<String>) {
        out.extend(self.0.root_properties());
    }

    /// The ids of an `id eq 'a' or id eq 'b'` filter (what delta accepts), if it is one.
    pub(crate) fn id_list(&self) -> Option<Vec<String>> {
        fn collect(e: &deskbridge_odata::Expr, out: &mut Vec<String>) -> Option<()> {
            use deskbridge_odata::Expr as E;
            match e {
                E::Binary {
                    op: BinaryOp::Or,
                    left,
                    right,
                } => {
                    collect(left, out)?;
                    collect(right, out)
                }
                E::Binary {
                    op: BinaryOp::Eq,
                    left,
                    right,
                } => match (&**left, &**right) {
                    (E::Property(p), E::Literal(Literal::String(s) | Literal::Guid(s)))
                        if p.len() == 1 && p[0] == "id" =>
                    {
                        out.push(s.clone());
                        Some(())
                    }
                    _ => None,
                },
                _ => None,
            }
        }
        let mut ids = Vec::new();
        collect(&self.0, &mut ids)?;
        Some(ids)
    }

    /// Evaluates against an object whose properties come from `get` (only those the filter
    /// reads are computed). Type errors and null results do not match, as in Graph.
    pub(crate) fn eval(&self, get: &dyn Fn(&str) -> Value) -> bool {
        let record: Map<String, Value> = self
            .0
            .root_properties()
            .into_iter()
            .map(|p| {
                let v = get(&p);
                (p, v)
            })
            .collect();
        deskbridge_odata::evaluate(&self.0, &Value::Object(record), &EvalOptions::graph()).unwrap_or(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn user() -> Value {
        json!({"userType": "Member", "accountEnabled": true, "displayName": "Zoë Müller",
               "assignedLicenses": [{"skuId": "6fd2c87f-b296-46aa-b1ee-7c38d3f1cd4a", "disabledPlans": []}],
               "mail": null})
    }

    fn eval(f: &str) -> bool {
        let u = user();
        parse(f)
            .unwrap()
            .eval(&|p| u.get(p).cloned().unwrap_or(Value::Null))
    }

    #[test]
    fn evaluates_the_graph_subset() {
        assert!(eval("userType eq 'Member'"));
        assert!(eval("userType eq 'member' and accountEnabled eq true"));
        assert!(!eval("userType eq 'Guest' or accountEnabled eq false"));
        assert!(eval("startswith(displayName,'zoë')"));
        assert!(eval(
            "assignedLicenses/any(x:x/skuId eq 6fd2c87f-b296-46aa-b1ee-7c38d3f1cd4a)"
        ));
        assert!(!eval(
            "assignedLicenses/any(x:x/skuId eq 00000000-0000-0000-0000-000000000000)"
        ));
        assert!(eval("userType in ('Guest','Member')"));
        assert!(eval("not (userType eq 'Guest')"));
        assert!(eval("mail eq null"));
    }

    #[test]
    fn reports_advanced_queries_and_id_lists() {
        assert!(parse("userType ne 'Guest'").unwrap().is_advanced());
        assert!(parse("endswith(mail,'@x.com')").unwrap().is_advanced());
        assert!(!parse("startswith(mail,'a')").unwrap().is_advanced());
        let ids = parse("id eq 'a' or id eq 'b'").unwrap().id_list().unwrap();
        assert_eq!(ids, vec!["a", "b"]);
    }

    #[test]
    fn rejects_malformed_filters() {
        assert!(parse("userType eq").is_err());
        assert!(parse("userType frob 'x'").is_err());
        assert!(parse("startswith(displayName,'x'").is_err());
        assert!(parse("displayName eq 'unterminated").is_err());
    }
}
