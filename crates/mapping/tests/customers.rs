//! The customer planner: accounts → desk customers. Matching by source id then (when asked) by
//! name, never a guess; values typed; inactive rows; removals kept or deactivated; a partial read
//! deactivates nobody; and, as a property, applying a plan then planning again changes nothing.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use deskbridge_core::{ConnectionId, RecordId};
use deskbridge_mapping::{
    Action, Completeness, CustomField, CustomFieldEntity, CustomFieldType, CustomerMappings, CustomerPlanner,
    DeskCustomer, ReadMode, Removal, RemovalReason, SourceIdentity, SourceRow, apply_customers,
};
use proptest::prelude::*;
use serde_json::{Map, Value, json};

const CONNECTION: ConnectionId = ConnectionId(7);

fn tier_field() -> Vec<CustomField> {
    vec![CustomField {
        name: "tier".into(),
        field_type: CustomFieldType::SingleSelect,
        options: vec!["Gold".into(), "Silver".into()],
        option_ids: Default::default(),
        entity: CustomFieldEntity::Customer,
    }]
}

fn mappings(json: Value) -> CustomerMappings {
    serde_json::from_value(json).unwrap()
}

fn planner(m: &CustomerMappings) -> CustomerPlanner {
    CustomerPlanner::new(m, &tier_field(), CONNECTION).unwrap()
}

fn row(id: &str, name: Value, tier: Option<&str>, state: Option<i64>) -> SourceRow {
    let mut values = Map::new();
    values.insert("name".into(), name);
    if let Some(tier) = tier {
        values.insert("cr7a1_tier".into(), json!(tier));
    }
    SourceRow {
        desk_table: "customers".into(),
        external_id: id.into(),
        values,
        state,
    }
}

fn desk(id: i64, name: &str, source: Option<(i64, &str)>) -> DeskCustomer {
    let mut fields = Map::new();
    fields.insert("name".into(), json!(name));
    DeskCustomer {
        id: RecordId(id),
        source: source.map(|(c, e)| SourceIdentity {
            connection_id: ConnectionId(c),
            external_id: e.into(),
        }),
        active: true,
        fields,
    }
}

fn with_tier() -> CustomerMappings {
    mappings(
        json!({"fields": [{"source": "name", "target": "name"}, {"source": "cr7a1_tier", "target": "custom:tier"}]}),
    )
}

#[test]
fn a_mapping_without_a_name_or_with_an_unknown_field_is_refused_with_each_problem() {
    let m = mappings(
        json!({"fields": [{"source": "accountnumber", "target": "custom:number"}, {"source": "x", "target": "active"}]}),
    );
    let problems = CustomerPlanner::new(&m, &tier_field(), CONNECTION).err().unwrap();
    assert_eq!(problems.len(), 3, "{problems:?}");
    assert!(
        problems[0].contains("no customer custom field \"number\" (it has tier)"),
        "{problems:?}"
    );
    assert!(
        problems[1].contains("active and the top level are set by the import itself"),
        "{problems:?}"
    );
    assert!(
        problems[2].contains("no field mapping writes name"),
        "{problems:?}"
    );
}

#[test]
fn rows_are_created_typed_and_an_inactive_row_makes_an_inactive_customer() {
    let m = mappings(json!({
        "fields": [{"source": "name", "target": "name"}, {"source": "cr7a1_tier", "target": "custom:tier"}],
        "top_level_id": 3,
    }));
    let mut p = planner(&m);
    p.begin("tenant", ReadMode::Full);
    let rows = [
        row("a", json!(" Contoso "), Some("Gold"), Some(0)),
        row("b", json!("Fabrikam"), None, Some(1)),
        row("c", json!(42), None, None),
        row("d", json!("Northwind"), Some("Bronze"), None),
        row("e", json!("   "), None, None),
    ];
    let plan = p.plan_page(&rows, &[], &[]);
    assert_eq!(plan.counts.created, 2, "{plan:#?}");
    let a = &plan.changes[0];
    assert_eq!(
        (a.action, a.fields["name"].after.clone()),
        (Action::Create, json!("Contoso"))
    );
    assert_eq!(a.fields["custom:tier"].after, json!("Gold"));
    assert_eq!(a.fields["active"].after, json!(true));
    assert_eq!(a.fields["top_level_id"].after, json!(3));
    assert_eq!(plan.changes[1].fields["active"].after, json!(false));
    let errors: Vec<(&str, &str)> = plan
        .errors
        .iter()
        .map(|e| (e.external_id.as_str(), e.message.as_str()))
        .collect();
    assert_eq!(errors.len(), 3, "{errors:?}");
    assert!(
        errors[0]
            .1
            .contains("name is 42, which does not fit the customer's name (of type text)"),
        "{errors:?}"
    );
    assert!(
        errors[1]
            .1
            .contains("Bronze not among the options of the customer's custom:tier (Gold, Silver)"),
        "{errors:?}"
    );
    assert!(errors[2].1.contains("the row has no name"), "{errors:?}");
    // A refused row makes the read partial: nobody is deactivated for being absent.
    let gone = desk(9, "Gone Ltd", Some((CONNECTION.0, "z")));
    let end = p.finish(Completeness::Complete, &[gone]);
    assert!(end.changes.is_empty(), "{end:#?}");
    assert!(
        end.notes[0].contains("the read was not complete"),
        "{:?}",
        end.notes
    );
}

#[test]
fn matching_by_name_links_one_customer_no_connection_imported_and_never_guesses() {
    let by_name =
        mappings(json!({"fields": [{"source": "name", "target": "name"}], "match_fields": ["name"]}));
    let existing = [
        desk(1, "Contoso", None),
        desk(2, "Fabrikam", None),
        desk(3, "fabrikam ", None),
        desk(4, "Northwind", Some((99, "other-row"))),
    ];
    let rows = [
        row("a", json!("CONTOSO"), None, None),
        row("b", json!("Fabrikam"), None, None),
        row("c", json!("Northwind"), None, None),
    ];
    let mut p = planner(&by_name);
    p.begin("tenant", ReadMode::Full);
    let plan = p.plan_page(&rows, &[], &existing);
    let actions: Vec<(String, Action)> = plan
        .changes
        .iter()
        .map(|c| (c.external_id.clone(), c.action))
        .collect();
    assert_eq!(
        actions,
        [
            ("a".into(), Action::Link),
            ("b".into(), Action::Conflict),
            ("c".into(), Action::Conflict)
        ]
    );
    assert_eq!(plan.targets["customer:a"], RecordId(1));
    assert!(
        plan.changes[1].reason.contains("2 desk customers are named"),
        "{}",
        plan.changes[1].reason
    );
    assert!(
        plan.changes[2].reason.contains("imported by connection 99"),
        "{}",
        plan.changes[2].reason
    );
    // Without match_fields, every row without a customer of its id is a new customer.
    let mut p = planner(&mappings(json!({})));
    p.begin("tenant", ReadMode::Full);
    let plan = p.plan_page(&rows, &[], &existing);
    assert!(
        plan.changes.iter().all(|c| c.action == Action::Create),
        "{plan:#?}"
    );
}

#[test]
fn removals_deactivate_or_are_kept_as_the_mapping_says() {
    let imported = [
        desk(1, "Contoso", Some((CONNECTION.0, "a"))),
        desk(2, "Fabrikam", Some((CONNECTION.0, "b"))),
    ];
    let removal = Removal {
        external_id: "a".into(),
        reason: RemovalReason::Deleted,
    };
    let mut keep = planner(&mappings(json!({})));
    keep.begin("tenant", ReadMode::Delta);
    let plan = keep.plan_page(&[], std::slice::from_ref(&removal), &imported);
    assert!(plan.changes.is_empty());
    assert!(
        plan.notes[0].contains("kept, as the customer mappings' removed is \"keep\""),
        "{:?}",
        plan.notes
    );

    let mut deactivate = planner(&mappings(json!({"removed": "deactivate"})));
    deactivate.begin("tenant", ReadMode::Full);
    let plan = deactivate.plan_page(&[row("a", json!("Contoso"), None, None)], &[], &imported);
    assert!(plan.changes.is_empty(), "unchanged: {plan:#?}");
    let end = deactivate.finish(Completeness::Complete, &imported);
    assert_eq!(end.changes.len(), 1, "{end:#?}");
    assert_eq!(
        (end.changes[0].external_id.as_str(), end.changes[0].action),
        ("b", Action::Deactivate)
    );
    assert_eq!(end.targets["customer:b"], RecordId(2));
}

fn arb_row() -> impl Strategy<Value = SourceRow> {
    (
        0..12u8,
        prop::sample::select(vec!["Contoso", "Fabrikam", "Northwind", "Tailspin", "contoso"]),
        prop::option::of(prop::sample::select(vec!["Gold", "Silver"])),
        prop::option::of(0..2i64),
    )
        .prop_map(|(id, name, tier, state)| row(&format!("row-{id}"), json!(name), tier, state))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// Whatever the rows and the desk, applying the plan then planning the same rows again
    /// changes nothing; and a plan never links or changes another connection's customer.
    #[test]
    fn applying_a_plan_then_planning_again_changes_nothing(
        rows in prop::collection::vec(arb_row(), 0..10),
        by_name in any::<bool>(),
        others in prop::collection::vec(prop::sample::select(vec!["Contoso", "Fabrikam", "Tailspin"]), 0..3),
    ) {
        // Rows of one id once (a page never holds a row twice).
        let mut seen = std::collections::BTreeSet::new();
        let rows: Vec<SourceRow> = rows.into_iter().filter(|r| seen.insert(r.external_id.clone())).collect();
        let m = if by_name {
            mappings(json!({"fields": [{"source": "name", "target": "name"}, {"source": "cr7a1_tier", "target": "custom:tier"}], "match_fields": ["name"]}))
        } else {
            with_tier()
        };
        let mut customers: Vec<DeskCustomer> = others
            .iter()
            .enumerate()
            .map(|(i, name)| desk(100 + i as i64, name, (i % 2 == 1).then_some((99, "theirs"))))
            .collect();
        let theirs: Vec<DeskCustomer> = customers.iter().filter(|c| c.source.as_ref().is_some_and(|s| s.connection_id.0 == 99)).cloned().collect();
        let mut p = planner(&m);
        p.begin("tenant", ReadMode::Full);
        let plan = p.plan_page(&rows, &[], &customers);
        for change in plan.changes.iter().filter(|c| c.action.writes()) {
            if let Some(target) = plan.targets.get(&format!("customer:{}", change.external_id)) {
                prop_assert!(!theirs.iter().any(|t| t.id == *target), "{change:?}");
            }
        }
        let mut next = 1_000;
        apply_customers(&mut customers, &plan, CONNECTION, &mut next);
        let mut again = planner(&m);
        again.begin("tenant", ReadMode::Full);
        let second = again.plan_page(&rows, &[], &customers);
        let writes: Vec<_> = second.changes.iter().filter(|c| c.action.writes()).collect();
        prop_assert!(writes.is_empty(), "{writes:#?}");
        prop_assert_eq!(&theirs, &customers.iter().filter(|c| c.source.as_ref().is_some_and(|s| s.connection_id.0 == 99)).cloned().collect::<Vec<_>>());
    }
}
