#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use deskbridge_odata::{
    BinaryOp, EvalError, EvalOptions, Expr, Feature, Function, LambdaKind, Literal, parse,
};
use serde_json::json;

fn prop(path: &str) -> Expr {
    Expr::Property(path.split('/').map(str::to_owned).collect())
}

fn string(value: &str) -> Expr {
    Expr::Literal(Literal::String(value.to_owned()))
}

fn bin(op: BinaryOp, left: Expr, right: Expr) -> Expr {
    Expr::Binary {
        op,
        left: Box::new(left),
        right: Box::new(right),
    }
}

fn matches(filter: &str, record: &serde_json::Value) -> bool {
    deskbridge_odata::evaluate(&parse(filter).unwrap(), record, &EvalOptions::default()).unwrap()
}

fn matches_ci(filter: &str, record: &serde_json::Value) -> bool {
    deskbridge_odata::evaluate(&parse(filter).unwrap(), record, &EvalOptions::graph()).unwrap()
}

// ---------- parsing and precedence ----------

#[test]
fn and_binds_tighter_than_or() {
    let expr = parse("a eq 1 or b eq 2 and c eq 3").unwrap();
    let expected = bin(
        BinaryOp::Or,
        bin(BinaryOp::Eq, prop("a"), Expr::Literal(Literal::Int(1))),
        bin(
            BinaryOp::And,
            bin(BinaryOp::Eq, prop("b"), Expr::Literal(Literal::Int(2))),
            bin(BinaryOp::Eq, prop("c"), Expr::Literal(Literal::Int(3))),
        ),
    );
    assert_eq!(expr, expected);
}

#[test]
fn parentheses_override_precedence_and_are_printed_only_when_needed() {
    let expr = parse("(a eq 1 or b eq 2) and c eq 3").unwrap();
    assert!(matches!(
        &expr,
        Expr::Binary {
            op: BinaryOp::And,
            ..
        }
    ));
    assert_eq!(expr.to_string(), "(a eq 1 or b eq 2) and c eq 3");
    assert_eq!(parse("((a eq 1))").unwrap().to_string(), "a eq 1");
}

#[test]
fn right_nested_same_precedence_keeps_its_parentheses() {
    let expr = parse("a or (b or c)").unwrap();
    assert_eq!(expr.to_string(), "a or (b or c)");
    assert_eq!(parse("a or b or c").unwrap().to_string(), "a or b or c");
}

#[test]
fn relational_binds_tighter_than_equality() {
    let expr = parse("a gt 1 eq true").unwrap();
    assert_eq!(
        expr,
        bin(
            BinaryOp::Eq,
            bin(BinaryOp::Gt, prop("a"), Expr::Literal(Literal::Int(1))),
            Expr::Literal(Literal::Bool(true))
        )
    );
}

#[test]
fn not_binds_tighter_than_comparison_as_in_odata() {
    let expr = parse("not a eq b").unwrap();
    assert_eq!(expr, bin(BinaryOp::Eq, Expr::Not(Box::new(prop("a"))), prop("b")));
    let expr = parse("not (a eq b)").unwrap();
    assert_eq!(expr.to_string(), "not (a eq b)");
    assert_eq!(
        parse("NOT(startsWith(a,'x'))").unwrap().to_string(),
        "not startswith(a,'x')"
    );
}

#[test]
fn in_binds_tighter_than_not() {
    let expr = parse("not department in ('Sales','IT')").unwrap();
    let Expr::Not(inner) = expr else {
        panic!("expected not")
    };
    assert_eq!(
        *inner,
        Expr::In {
            left: Box::new(prop("department")),
            items: vec![string("Sales"), string("IT")]
        }
    );
}

#[test]
fn every_comparison_operator_parses() {
    for (text, op) in [
        ("eq", BinaryOp::Eq),
        ("ne", BinaryOp::Ne),
        ("gt", BinaryOp::Gt),
        ("ge", BinaryOp::Ge),
        ("lt", BinaryOp::Lt),
        ("le", BinaryOp::Le),
    ] {
        let expr = parse(&format!("x {text} 5")).unwrap();
        assert_eq!(expr, bin(op, prop("x"), Expr::Literal(Literal::Int(5))), "{text}");
        assert_eq!(expr.to_string(), format!("x {text} 5"));
    }
}

#[test]
fn literals_of_every_kind() {
    let cases: Vec<(&str, Literal)> = vec![
        ("null", Literal::Null),
        ("true", Literal::Bool(true)),
        ("false", Literal::Bool(false)),
        ("42", Literal::Int(42)),
        ("-7", Literal::Int(-7)),
        ("3.25", Literal::Decimal(3.25)),
        ("1e3", Literal::Decimal(1000.0)),
        ("'O''Brien'", Literal::String("O'Brien".into())),
        ("'日本'", Literal::String("日本".into())),
        (
            "6FD2C87F-B296-42F0-B197-1E91E994B900",
            Literal::Guid("6fd2c87f-b296-42f0-b197-1e91e994b900".into()),
        ),
        (
            "2025-01-31T08:00:00Z",
            Literal::DateTimeOffset("2025-01-31T08:00:00Z".parse().unwrap()),
        ),
        (
            "2025-01-31T09:00:00+01:00",
            Literal::DateTimeOffset("2025-01-31T08:00:00Z".parse().unwrap()),
        ),
        ("2025-01-31", Literal::Date("2025-01-31".parse().unwrap())),
    ];
    for (text, literal) in cases {
        let expr = parse(&format!("x eq {text}")).unwrap();
        assert_eq!(
            expr,
            bin(BinaryOp::Eq, prop("x"), Expr::Literal(literal)),
            "{text}"
        );
        assert_eq!(parse(&expr.to_string()).unwrap(), expr, "{text}");
    }
    assert_eq!(parse("x eq 'O''Brien'").unwrap().to_string(), "x eq 'O''Brien'");
}

#[test]
fn guid_starting_with_letters_is_not_a_property() {
    let expr = parse("skuId eq abcdef12-0000-4000-8000-000000000001").unwrap();
    assert_eq!(
        expr,
        bin(
            BinaryOp::Eq,
            prop("skuId"),
            Expr::Literal(Literal::Guid("abcdef12-0000-4000-8000-000000000001".into()))
        )
    );
}

#[test]
fn lambdas_parse_and_print() {
    let text = "assignedLicenses/any(x:x/skuId eq 6fd2c87f-b296-42f0-b197-1e91e994b900)";
    let expr = parse(text).unwrap();
    let Expr::Lambda {
        collection,
        kind,
        body: Some((variable, _)),
    } = &expr
    else {
        panic!("{expr:?}")
    };
    assert_eq!(collection, &vec!["assignedLicenses".to_owned()]);
    assert_eq!(*kind, LambdaKind::Any);
    assert_eq!(variable, "x");
    assert_eq!(expr.to_string(), text);

    let expr = parse("proxyAddresses/any(p: startswith(p, 'smtp:'))").unwrap();
    assert_eq!(expr.to_string(), "proxyAddresses/any(p:startswith(p,'smtp:'))");
    assert_eq!(parse("groupTypes/any()").unwrap().to_string(), "groupTypes/any()");
    assert_eq!(
        parse("a/b/all(t:t ne 'x')").unwrap().to_string(),
        "a/b/all(t:t ne 'x')"
    );
}

#[test]
fn dataverse_functions_parse_generically() {
    let text = "Microsoft.Dynamics.CRM.ContainValues(PropertyName='hobbies',PropertyValues=['1','9'])";
    let expr = parse(text).unwrap();
    let Expr::QualifiedCall { name, params } = &expr else {
        panic!("{expr:?}")
    };
    assert_eq!(name, "Microsoft.Dynamics.CRM.ContainValues");
    assert_eq!(params.len(), 2);
    assert_eq!(params[1].1, Expr::Array(vec![string("1"), string("9")]));
    assert_eq!(expr.to_string(), text);
    let text =
        "Microsoft.Dynamics.CRM.LastXDays(PropertyName='modifiedon',PropertyValue=3) and statecode eq 0";
    assert_eq!(parse(text).unwrap().to_string(), text);
}

#[test]
fn functions_are_case_insensitive_and_printed_lower_case() {
    let expr =
        parse("startsWith(displayName,'A') and endsWith(mail,'@x.com') or contains(toLower(a),'b')").unwrap();
    assert_eq!(
        expr.functions().into_iter().collect::<Vec<_>>(),
        vec![
            Function::StartsWith,
            Function::EndsWith,
            Function::Contains,
            Function::ToLower
        ]
    );
    assert_eq!(
        expr.to_string(),
        "startswith(displayName,'A') and endswith(mail,'@x.com') or contains(tolower(a),'b')"
    );
}

#[test]
fn properties_operators_and_features_are_reported() {
    let expr = parse(
        "department eq 'Sales' and manager/id ne null and assignedLicenses/any(x:x/skuId eq \
         6fd2c87f-b296-42f0-b197-1e91e994b900) and not (city in ('A','B'))",
    )
    .unwrap();
    let properties: Vec<String> = expr.properties().into_iter().collect();
    assert_eq!(
        properties,
        vec![
            "assignedLicenses",
            "assignedLicenses/skuId",
            "city",
            "department",
            "manager/id"
        ]
    );
    let roots: Vec<String> = expr.root_properties().into_iter().collect();
    assert_eq!(roots, vec!["assignedLicenses", "city", "department", "manager"]);
    let operators: Vec<BinaryOp> = expr.operators().into_iter().collect();
    assert_eq!(operators, vec![BinaryOp::And, BinaryOp::Eq, BinaryOp::Ne]);
    assert!(expr.uses(Feature::Lambda));
    assert!(expr.uses(Feature::Not));
    assert!(expr.uses(Feature::In));
    assert!(!expr.uses(Feature::QualifiedCall));
}

// ---------- parse errors ----------

#[test]
fn missing_closing_parenthesis_names_the_column() {
    let error = parse("(department eq 'x'").unwrap_err();
    assert_eq!(error.to_string(), "expected ')' at column 19, found end of input");
    assert_eq!(error.column, 19);
    assert_eq!(error.offset, 18);
}

#[test]
fn errors_are_precise() {
    let cases = [
        (
            "department eq",
            "expected a property, literal or function at column 14, found end of input",
        ),
        (
            "department 'x'",
            "expected an operator (and, or, eq, …) or the end of the filter at column 12, found a string",
        ),
        (
            "department eq 'x",
            "expected a closing quote (') for the string started at column 15 at column 17, found end of input",
        ),
        (
            "frobnicate(a) eq 1",
            "expected a known function (startswith, endswith, contains, tolower, toupper, trim, length, concat) at column 1, found 'frobnicate'",
        ),
        (
            "startswith(a) eq true",
            "expected 2 argument(s) for startswith at column 13, found 1 argument(s)",
        ),
        (
            "a in ()",
            "expected at least one value in the 'in' list at column 7, found ')'",
        ),
        (
            "a eq 1 and",
            "expected a property, literal or function at column 11, found end of input",
        ),
        (
            "a eq 99999999999999999999",
            "expected an integer within 64 bits at column 6, found '99999999999999999999'",
        ),
        (
            "a eq 2025-13-01",
            "expected a valid date (YYYY-MM-DD) at column 6, found '2025-13-01'",
        ),
        (
            "a eq 2025-01-01T10:00",
            "expected a date-time with an offset (e.g. 2025-01-31T08:00:00Z) at column 6, found '2025-01-01T10:00'",
        ),
        (
            "a eq 1 ; drop",
            "expected an expression or operator at column 8, found ';'",
        ),
        (
            "tags/all()",
            "expected a lambda variable and predicate (all(x:…)) at column 10, found ')'",
        ),
        ("x/any(t t eq 1)", "expected ':' at column 9, found 't'"),
        (
            "a eq 12abc",
            "expected a number, GUID or date at column 6, found '12abc'",
        ),
        (
            "and eq 1",
            "expected a property, literal or function at column 1, found keyword 'and'",
        ),
        (
            "é eq 1",
            "expected an expression or operator at column 1, found 'é'",
        ),
        (
            "'é' eq é",
            "expected an expression or operator at column 8, found 'é'",
        ),
    ];
    for (input, message) in cases {
        assert_eq!(parse(input).unwrap_err().to_string(), message, "{input}");
    }
}

#[test]
fn absurd_nesting_is_an_error_not_a_stack_overflow() {
    let deep = format!("{}a eq 1{}", "(".repeat(5000), ")".repeat(5000));
    let error = parse(&deep).unwrap_err();
    assert!(error.expected.contains("levels of nesting"), "{error}");
    let long_chain = (0..5000)
        .map(|i| format!("a eq {i}"))
        .collect::<Vec<_>>()
        .join(" or ");
    assert!(parse(&long_chain).is_err());
    let nots = format!("{}true", "not ".repeat(5000));
    assert!(parse(&nots).is_err());
}

// ---------- evaluation ----------

#[test]
fn comparisons_on_strings_numbers_and_booleans() {
    let user = json!({"department": "Sales", "age": 41, "score": 2.5, "accountEnabled": true});
    assert!(matches("department eq 'Sales'", &user));
    assert!(!matches("department eq 'sales'", &user));
    assert!(matches_ci("department eq 'sales'", &user));
    assert!(matches("department ne 'IT'", &user));
    assert!(matches(
        "age gt 40 and age ge 41 and age lt 42 and age le 41",
        &user
    ));
    assert!(!matches("age gt 41", &user));
    assert!(matches("score gt 2 and score lt 2.6", &user));
    assert!(matches("accountEnabled eq true", &user));
    assert!(matches("department gt 'A' and department lt 'T'", &user));
}

#[test]
fn logical_operators() {
    let user = json!({"a": 1, "b": 2});
    assert!(matches("a eq 1 and b eq 2", &user));
    assert!(!matches("a eq 1 and b eq 3", &user));
    assert!(matches("a eq 9 or b eq 2", &user));
    assert!(!matches("a eq 9 or b eq 9", &user));
    assert!(matches("not (a eq 9)", &user));
    assert!(!matches("not (a eq 1)", &user));
}

#[test]
fn null_semantics_follow_odata() {
    let user = json!({"department": null, "city": "Leeds"});
    assert!(matches("department eq null", &user));
    assert!(matches("missing eq null", &user));
    assert!(matches("city ne null", &user));
    assert!(!matches("department ne null", &user));
    assert!(!matches("department eq 'Sales'", &user));
    assert!(matches("department ne 'Sales'", &user));
    // Relational comparisons and functions with null are null: neither they nor their negation match.
    assert!(!matches("department gt 'A'", &user));
    assert!(!matches("not (department gt 'A')", &user));
    assert!(!matches("startswith(department,'S')", &user));
    assert!(!matches("not startswith(department,'S')", &user));
    // Three-valued logic: null or true is true, null and false is false.
    assert!(matches("department gt 'A' or city eq 'Leeds'", &user));
    assert!(!matches("department gt 'A' and city eq 'Leeds'", &user));
    assert!(matches("not (department gt 'A' and city eq 'York')", &user));
    assert!(matches("manager/id eq null", &json!({"manager": null})));
}

#[test]
fn in_lists() {
    let user = json!({"country": "UK"});
    assert!(matches("country in ('UK','IE')", &user));
    assert!(!matches("country in ('FR','IE')", &user));
    assert!(matches_ci("country in ('uk')", &user));
    assert!(matches("missing in ('x', null)", &user));
}

#[test]
fn string_functions() {
    let user = json!({"mail": "Ann.Lee@Contoso.com", "name": "  Ann  "});
    assert!(matches("startswith(mail,'Ann.')", &user));
    assert!(!matches("startswith(mail,'ann.')", &user));
    assert!(matches_ci("startswith(mail,'ann.')", &user));
    assert!(matches("endswith(mail,'.com')", &user));
    assert!(matches("contains(mail,'Lee@')", &user));
    assert!(matches("tolower(mail) eq 'ann.lee@contoso.com'", &user));
    assert!(matches("toupper(mail) eq 'ANN.LEE@CONTOSO.COM'", &user));
    assert!(matches("trim(name) eq 'Ann'", &user));
    assert!(matches("length(trim(name)) eq 3", &user));
    assert!(matches("concat(trim(name),'!') eq 'Ann!'", &user));
}

#[test]
fn guids_and_dates_compare_with_strings() {
    let user = json!({
        "id": "6FD2C87F-B296-42F0-B197-1E91E994B900",
        "createdDateTime": "2024-03-01T10:00:00Z",
        "hireDate": "2020-05-01"
    });
    assert!(matches("id eq 6fd2c87f-b296-42f0-b197-1e91e994b900", &user));
    assert!(matches("createdDateTime gt 2024-01-01T00:00:00Z", &user));
    assert!(matches("createdDateTime lt 2024-03-01T11:00:00+00:30", &user));
    assert!(matches("createdDateTime ge 2024-03-01", &user));
    assert!(matches("hireDate lt 2021-01-01", &user));
}

#[test]
fn lambdas_evaluate_over_collections() {
    let user = json!({
        "assignedLicenses": [{"skuId": "6fd2c87f-b296-42f0-b197-1e91e994b900"}, {"skuId": "c42b9cae-ea4f-4ab7-9717-81576235ccac"}],
        "proxyAddresses": ["SMTP:ann@contoso.com", "smtp:a@contoso.com"],
        "empty": []
    });
    assert!(matches(
        "assignedLicenses/any(x:x/skuId eq 6fd2c87f-b296-42f0-b197-1e91e994b900)",
        &user
    ));
    assert!(!matches(
        "assignedLicenses/any(x:x/skuId eq 00000000-0000-0000-0000-000000000000)",
        &user
    ));
    assert!(matches("proxyAddresses/any(p:startswith(p,'smtp:'))", &user));
    assert!(!matches("proxyAddresses/all(p:startswith(p,'smtp:'))", &user));
    assert!(matches_ci("proxyAddresses/all(p:startswith(p,'smtp:'))", &user));
    assert!(matches("assignedLicenses/any()", &user));
    assert!(!matches("empty/any()", &user));
    assert!(matches("empty/all(e:e eq 1)", &user));
    assert!(!matches("missing/any(m:m eq 1)", &user));
    // Nested lambdas see the outer variable.
    let groups = json!({"groups": [{"name": "a", "tags": ["x", "y"]}]});
    assert!(matches(
        "groups/any(g:g/name eq 'a' and g/tags/any(t:t eq 'y'))",
        &groups
    ));
}

#[test]
fn evaluate_object_reads_a_map_directly() {
    let record = json!({"department": "Sales"});
    let expr = parse("department eq 'sales'").unwrap();
    let map = record.as_object().unwrap();
    assert!(deskbridge_odata::evaluate_object(&expr, map, &EvalOptions::graph()).unwrap());
    assert!(!deskbridge_odata::evaluate_object(&expr, map, &EvalOptions::default()).unwrap());
}

#[test]
fn property_names_fall_back_to_case_insensitive_lookup() {
    let user = json!({"officeLocation": "London"});
    assert!(matches("officelocation eq 'London'", &user));
}

#[test]
fn dataverse_functions_evaluate() {
    let contact = json!({"hobbies": "1,9,12", "statecode": 0, "name": null, "revenue": 500});
    assert!(matches(
        "Microsoft.Dynamics.CRM.ContainValues(PropertyName='hobbies',PropertyValues=['9','4'])",
        &contact
    ));
    assert!(!matches(
        "Microsoft.Dynamics.CRM.ContainValues(PropertyName='hobbies',PropertyValues=['4'])",
        &contact
    ));
    assert!(matches(
        "Microsoft.Dynamics.CRM.DoesNotContainValues(PropertyName='hobbies',PropertyValues=['4'])",
        &contact
    ));
    assert!(matches(
        "Microsoft.Dynamics.CRM.In(PropertyName='statecode',PropertyValues=['0','1'])",
        &contact
    ));
    assert!(matches(
        "Microsoft.Dynamics.CRM.NotIn(PropertyName='statecode',PropertyValues=['2'])",
        &contact
    ));
    assert!(matches(
        "Microsoft.Dynamics.CRM.Null(PropertyName='name')",
        &contact
    ));
    assert!(matches(
        "Microsoft.Dynamics.CRM.NotNull(PropertyName='statecode')",
        &contact
    ));
    assert!(matches(
        "Microsoft.Dynamics.CRM.Between(PropertyName='revenue',PropertyValues=[100,1000])",
        &contact
    ));
    assert!(matches(
        "Microsoft.Dynamics.CRM.NotBetween(PropertyName='revenue',PropertyValues=[1,10])",
        &contact
    ));
    let unsupported =
        parse("Microsoft.Dynamics.CRM.LastXDays(PropertyName='modifiedon',PropertyValue=3)").unwrap();
    assert_eq!(
        deskbridge_odata::evaluate(&unsupported, &contact, &EvalOptions::default()).unwrap_err(),
        EvalError::UnsupportedFunction("Microsoft.Dynamics.CRM.LastXDays".into())
    );
}

#[test]
fn evaluation_errors_name_the_problem() {
    let eval = |filter: &str, record: serde_json::Value| {
        deskbridge_odata::evaluate(&parse(filter).unwrap(), &record, &EvalOptions::default())
            .unwrap_err()
            .to_string()
    };
    assert_eq!(
        eval("age eq 'x'", json!({"age": 3})),
        "cannot compare an integer with a string using 'eq'"
    );
    assert_eq!(
        eval("a eq 1", json!([1])),
        "the record is not a JSON object (it is an array)"
    );
    assert_eq!(
        eval("name", json!({"name": "x"})),
        "'$filter' needs true, false or null, but got a string"
    );
    assert_eq!(
        eval("name and true", json!({"name": "x"})),
        "'and' needs true, false or null, but got a string"
    );
    assert_eq!(
        eval("startswith(age,'1')", json!({"age": 3})),
        "startswith expects a string, but argument 1 is an integer"
    );
    assert_eq!(
        eval("tags/any(t:t eq 1)", json!({"tags": "x"})),
        "'tags' is a string, not a collection, so any() cannot be applied"
    );
    assert_eq!(
        eval("a/b/c eq 1", json!({"a": {"b": 5}})),
        "cannot read 'c' of 'a/b': the value there is a number, not an object"
    );
    assert_eq!(
        eval("created gt 2024-01-01T00:00:00Z", json!({"created": "yesterday"})),
        "the value \"yesterday\" cannot be read as a date-time"
    );
    assert_eq!(
        eval("(a eq 1) eq 'x'", json!({"a": 1})),
        "cannot compare a boolean with a string using 'eq'"
    );
}

// ---------- round trip ----------

mod round_trip {
    use super::*;
    use proptest::prelude::*;

    fn identifier() -> impl Strategy<Value = String> {
        "[a-zA-Z_][a-zA-Z0-9_]{0,6}".prop_filter("not a keyword", |name| {
            ![
                "and", "or", "not", "eq", "ne", "gt", "ge", "lt", "le", "in", "null", "true", "false", "any",
                "all",
            ]
            .iter()
            .any(|k| k.eq_ignore_ascii_case(name))
        })
    }

    fn path() -> impl Strategy<Value = Vec<String>> {
        prop::collection::vec(identifier(), 1..3)
    }

    fn literal() -> impl Strategy<Value = Literal> {
        prop_oneof![
            Just(Literal::Null),
            any::<bool>().prop_map(Literal::Bool),
            any::<i64>().prop_map(Literal::Int),
            any::<f64>()
                .prop_filter("finite", |f| f.is_finite())
                .prop_map(Literal::Decimal),
            "[ -~é']{0,8}".prop_map(Literal::String),
            "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}".prop_map(Literal::Guid),
            (0i64..4_102_444_800, 0i32..1_000_000_000).prop_map(|(secs, nanos)| {
                Literal::DateTimeOffset(jiff::Timestamp::new(secs, nanos).unwrap())
            }),
            (1900i16..2100, 1i8..13, 1i8..29)
                .prop_map(|(y, m, d)| Literal::Date(jiff::civil::Date::new(y, m, d).unwrap())),
        ]
    }

    fn expr() -> impl Strategy<Value = Expr> {
        let leaf = prop_oneof![literal().prop_map(Expr::Literal), path().prop_map(Expr::Property)];
        leaf.prop_recursive(5, 48, 4, |inner| {
            let op = prop_oneof![
                Just(BinaryOp::Or),
                Just(BinaryOp::And),
                Just(BinaryOp::Eq),
                Just(BinaryOp::Ne),
                Just(BinaryOp::Gt),
                Just(BinaryOp::Ge),
                Just(BinaryOp::Lt),
                Just(BinaryOp::Le),
            ];
            let function = prop::sample::select(Function::ALL.to_vec());
            prop_oneof![
                (op, inner.clone(), inner.clone()).prop_map(|(op, l, r)| Expr::Binary {
                    op,
                    left: Box::new(l),
                    right: Box::new(r)
                }),
                inner.clone().prop_map(|e| Expr::Not(Box::new(e))),
                (inner.clone(), prop::collection::vec(inner.clone(), 1..3)).prop_map(|(l, items)| Expr::In {
                    left: Box::new(l),
                    items
                }),
                (function, prop::collection::vec(inner.clone(), 2)).prop_map(|(function, mut args)| {
                    args.truncate(function.arity());
                    Expr::Call { function, args }
                }),
                (
                    path(),
                    any::<bool>(),
                    identifier(),
                    proptest::option::of(inner.clone())
                )
                    .prop_map(|(collection, all, variable, body)| {
                        let kind = if all { LambdaKind::All } else { LambdaKind::Any };
                        let body = match (kind, body) {
                            (LambdaKind::All, None) => {
                                Some((variable, Box::new(Expr::Literal(Literal::Bool(true)))))
                            }
                            (_, body) => body.map(|b| (variable, Box::new(b))),
                        };
                        Expr::Lambda {
                            collection,
                            kind,
                            body,
                        }
                    }),
                (
                    prop::collection::vec(identifier(), 2..4),
                    prop::collection::vec(
                        (
                            identifier(),
                            prop_oneof![
                                literal().prop_map(Expr::Literal),
                                prop::collection::vec(literal().prop_map(Expr::Literal), 0..3)
                                    .prop_map(Expr::Array)
                            ]
                        ),
                        0..3
                    )
                )
                    .prop_map(|(name, params)| Expr::QualifiedCall {
                        name: name.join("."),
                        params
                    }),
            ]
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]
        #[test]
        fn parse_of_print_is_identity(expr in expr()) {
            let text = expr.to_string();
            let reparsed = parse(&text);
            prop_assert_eq!(reparsed.as_ref(), Ok(&expr), "text: {}", text);
        }

        #[test]
        fn parser_never_panics(input in "[ -~]{0,60}") {
            let _ = parse(&input);
        }

        #[test]
        fn parser_never_panics_on_any_text(input in "\\PC{0,40}") {
            if let Err(error) = parse(&input) {
                prop_assert!(error.column >= 1 && error.column <= input.chars().count() + 1, "{error}");
                prop_assert!(input.is_char_boundary(error.offset));
            }
        }

        #[test]
        fn parser_never_panics_on_filter_like_text(
            input in prop::collection::vec(
                prop::sample::select(vec!["a", "eq", "'x'", "(", ")", "and", "not", "in", ",", "/", "any", ":", "1", "-2.5", "null",
                    "2025-01-01", "6fd2c87f-b296-42f0-b197-1e91e994b900", "startswith", "M.N.F", "=", "[", "]", " "]),
                0..20,
            ).prop_map(|parts| parts.join(" "))
        ) {
            if let Ok(expr) = parse(&input) {
                prop_assert_eq!(parse(&expr.to_string()), Ok(expr));
            }
        }

        #[test]
        fn evaluator_never_panics(expr in expr(), age in any::<i64>(), name in "[a-z]{0,5}") {
            let record = json!({"age": age, "name": name, "tags": [name.clone(), null], "o": {"p": age}});
            let _ = deskbridge_odata::evaluate(&expr, &record, &EvalOptions::graph());
        }
    }
}
