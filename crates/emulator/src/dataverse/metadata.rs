//! Metadata: `EntityDefinitions` (entities, `Attributes`, casts such as
//! `Microsoft.Dynamics.CRM.PicklistAttributeMetadata` with `$expand=OptionSet,GlobalOptionSet`),
//! `GlobalOptionSetDefinitions`, and the CSDL document at `$metadata`.
use serde_json::{Map, Value, json};

use super::model::{Column, ColumnKind, Table};
use super::query::{Expand, Options, matches, split_top};
use super::{Answer, AnswerBody, Ctx, DvResult, bad_query, no_segment};

fn label(text: &str) -> Value {
    let one = json!({"Label": text, "LanguageCode": 1033, "IsManaged": true, "HasChanged": null});
    json!({"LocalizedLabels": [one.clone()], "UserLocalizedLabel": one})
}

fn managed(value: bool, name: &str) -> Value {
    json!({"Value": value, "CanBeChanged": true, "ManagedPropertyLogicalName": name})
}

fn schema_name(logical: &str) -> String {
    let mut out = String::new();
    let mut upper = true;
    for ch in logical.chars() {
        if ch == '_' {
            out.push(ch);
            upper = true;
        } else if upper {
            out.extend(ch.to_uppercase());
            upper = false;
        } else {
            out.push(ch);
        }
    }
    out
}

fn entity_json(table: &Table) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("MetadataId".into(), json!(table.metadata_id));
    m.insert("LogicalName".into(), json!(table.logical_name));
    m.insert("SchemaName".into(), json!(schema_name(&table.logical_name)));
    m.insert("EntitySetName".into(), json!(table.entity_set_name));
    m.insert("LogicalCollectionName".into(), json!(table.entity_set_name));
    m.insert("PrimaryIdAttribute".into(), json!(table.primary_id));
    m.insert("PrimaryNameAttribute".into(), json!(table.primary_name));
    m.insert("ObjectTypeCode".into(), json!(table.object_type_code));
    m.insert("IsCustomEntity".into(), json!(table.is_custom));
    m.insert("IsActivity".into(), json!(false));
    m.insert(
        "OwnershipType".into(),
        json!(if table.logical_name == "systemuser" {
            "BusinessOwned"
        } else {
            "UserOwned"
        }),
    );
    m.insert("ChangeTrackingEnabled".into(), json!(table.change_tracking));
    m.insert(
        "CanChangeTrackingBeEnabled".into(),
        managed(true, "canchangetrackingbeenabled"),
    );
    m.insert("DisplayName".into(), label(&table.display_name));
    m.insert(
        "DisplayCollectionName".into(),
        label(&table.display_collection_name),
    );
    m
}

fn option_set_name(table: &Table, column: &Column) -> String {
    column
        .global_option_set
        .clone()
        .unwrap_or_else(|| format!("{}_{}", table.logical_name, column.logical_name))
}

fn option_set(table: &Table, column: &Column) -> Value {
    let options: Vec<Value> = column
        .options
        .iter()
        .map(|o| {
            let mut v = json!({"Value": o.value, "Color": null, "IsManaged": !column.is_custom, "ExternalValue": "",
                               "ParentValues": [], "Label": label(&o.label), "Description": label("")});
            if column.kind == ColumnKind::State {
                v["DefaultStatus"] = json!(o.value + 1);
                v["InvariantName"] = json!(o.label);
            }
            if column.kind == ColumnKind::Status {
                v["State"] = json!(o.value - 1);
            }
            v
        })
        .collect();
    let name = option_set_name(table, column);
    let kind = match column.kind {
        ColumnKind::State => "State",
        ColumnKind::Status => "Status",
        ColumnKind::Boolean => "Boolean",
        _ => "Picklist",
    };
    let id = {
        use sha2::Digest;
        let digest = sha2::Sha256::digest(name.as_bytes());
        let mut bytes = [0u8; 16];
        bytes.copy_from_slice(&digest[..16]);
        uuid::Builder::from_random_bytes(bytes).into_uuid().to_string()
    };
    if column.kind == ColumnKind::Boolean {
        let find = |v: i32| {
            options
                .iter()
                .find(|o| o["Value"] == json!(v))
                .cloned()
                .unwrap_or(Value::Null)
        };
        return json!({"MetadataId": id, "Name": name, "IsGlobal": column.global_option_set.is_some(),
                      "OptionSetType": kind, "TrueOption": find(1), "FalseOption": find(0)});
    }
    json!({"MetadataId": id, "Name": name, "IsGlobal": column.global_option_set.is_some(), "OptionSetType": kind,
           "DisplayName": label(&column.display_name), "Options": options})
}

fn attribute_json(table: &Table, column: &Column) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert(
        "@odata.type".into(),
        json!(format!("#Microsoft.Dynamics.CRM.{}", column.kind.metadata_type())),
    );
    m.insert("MetadataId".into(), json!(column.metadata_id));
    m.insert("LogicalName".into(), json!(column.logical_name));
    m.insert("SchemaName".into(), json!(schema_name(&column.logical_name)));
    m.insert("EntityLogicalName".into(), json!(table.logical_name));
    m.insert("AttributeType".into(), json!(column.kind.attribute_type()));
    m.insert(
        "AttributeTypeName".into(),
        json!({"Value": column.kind.type_name()}),
    );
    m.insert("AttributeOf".into(), Value::Null);
    m.insert("DisplayName".into(), label(&column.display_name));
    m.insert("IsCustomAttribute".into(), json!(column.is_custom));
    m.insert(
        "IsPrimaryId".into(),
        json!(column.logical_name == table.primary_id),
    );
    m.insert(
        "IsPrimaryName".into(),
        json!(column.logical_name == table.primary_name),
    );
    m.insert("IsValidForRead".into(), json!(true));
    m.insert(
        "RequiredLevel".into(),
        json!({"Value": if column.logical_name == table.primary_name { "ApplicationRequired" } else { "None" },
               "CanBeChanged": true, "ManagedPropertyLogicalName": "canmodifyrequirementlevelsettings"}),
    );
    if column.kind.is_lookup() {
        m.insert(
            "Targets".into(),
            json!(column.targets.iter().map(|t| t.table.clone()).collect::<Vec<_>>()),
        );
    }
    match column.kind {
        ColumnKind::DateTime => {
            m.insert("Format".into(), json!("DateAndTime"));
            m.insert("DateTimeBehavior".into(), json!({"Value": "UserLocal"}));
        }
        ColumnKind::Date => {
            m.insert("Format".into(), json!("DateOnly"));
            m.insert("DateTimeBehavior".into(), json!({"Value": "DateOnly"}));
        }
        ColumnKind::String => {
            m.insert(
                "MaxLength".into(),
                json!(if column.logical_name.contains("email") {
                    100
                } else {
                    160
                }),
            );
        }
        _ => {}
    }
    m
}

fn keep_selected(map: &mut Map<String, Value>, select: &Option<Vec<String>>) {
    if let Some(names) = select {
        map.retain(|k, _| {
            k == "MetadataId" || k == "@odata.type" || names.iter().any(|n| n.eq_ignore_ascii_case(k))
        });
    }
}

fn filter_ok(options: &Options, map: &Map<String, Value>) -> DvResult<bool> {
    match &options.filter {
        Some(f) => matches(f, map),
        None => Ok(true),
    }
}

/// The key of `Name(LogicalName='x')`, `Name(x)` or `Name({guid})`.
fn key_of(segment: &str) -> Option<String> {
    let open = segment.find('(')?;
    let inner = segment.get(open + 1..segment.len().checked_sub(1)?)?;
    let value = inner.split_once('=').map_or(inner, |(_, v)| v);
    Some(
        value
            .trim()
            .trim_matches('\'')
            .trim_matches(|c| c == '{' || c == '}')
            .to_owned(),
    )
}

fn cast_kind(segment: &str) -> Option<&str> {
    segment.strip_prefix("Microsoft.Dynamics.CRM.")
}

fn attribute_with(table: &Table, column: &Column, options: &Options) -> Map<String, Value> {
    let mut m = attribute_json(table, column);
    for e in &options.expand {
        let value = match e.nav.as_str() {
            "OptionSet" if column.kind.has_options() => option_set(table, column),
            "GlobalOptionSet" if column.kind.has_options() && column.global_option_set.is_some() => {
                option_set(table, column)
            }
            _ => Value::Null,
        };
        let value = match (value, &e.options.select) {
            (Value::Object(mut o), select) => {
                keep_selected(&mut o, select);
                Value::Object(o)
            }
            (v, _) => v,
        };
        m.insert(e.nav.clone(), value);
    }
    let mut select = options.select.clone();
    if let Some(s) = &mut select {
        s.extend(options.expand.iter().map(|e| e.nav.clone()));
    }
    keep_selected(&mut m, &select);
    m
}

fn attributes_of(table: &Table, options: &Options, cast: Option<&str>) -> DvResult<Vec<Value>> {
    let mut out = Vec::new();
    for column in &table.columns {
        if cast.is_some_and(|c| c != column.kind.metadata_type()) {
            continue;
        }
        let full = attribute_json(table, column);
        if !filter_ok(options, &full)? {
            continue;
        }
        out.push(Value::Object(attribute_with(table, column, options)));
    }
    Ok(out)
}

fn entity_with(table: &Table, options: &Options) -> DvResult<Map<String, Value>> {
    let mut m = entity_json(table);
    for e in &options.expand {
        match e.nav.as_str() {
            "Attributes" => {
                m.insert(
                    "Attributes".into(),
                    Value::Array(attributes_of(table, &e.options, None)?),
                );
            }
            other => {
                return Err(bad_query(format!(
                    "Could not find a property named '{other}' on type 'Microsoft.Dynamics.CRM.EntityMetadata'."
                )));
            }
        }
    }
    let mut select = options.select.clone();
    if let Some(s) = &mut select {
        s.extend(options.expand.iter().map(|e: &Expand| e.nav.clone()));
    }
    keep_selected(&mut m, &select);
    Ok(m)
}

fn context(ctx: &Ctx<'_>, what: &str, options: &Options) -> String {
    let projection = options
        .select
        .as_ref()
        .map(|s| format!("({})", s.join(",")))
        .unwrap_or_default();
    format!("{}/$metadata#{what}{projection}", ctx.api)
}

/// `Microsoft.Dynamics.CRM.AttributeTypeCode'Picklist'` (an enum literal) → `'Picklist'`, so
/// metadata filters such as `AttributeType eq Microsoft.Dynamics.CRM.AttributeTypeCode'Picklist'`
/// compare with the string the metadata holds.
fn enum_literals_as_strings(filter: &str) -> String {
    const PREFIX: &str = "Microsoft.Dynamics.CRM.";
    let mut out = String::with_capacity(filter.len());
    let mut rest = filter;
    while let Some(i) = rest.find(PREFIX) {
        let after = &rest[i + PREFIX.len()..];
        let name_len = after
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(after.len());
        if after[name_len..].starts_with('\'') {
            out.push_str(&rest[..i]);
            rest = &after[name_len..];
        } else {
            out.push_str(&rest[..i + PREFIX.len()]);
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

pub(crate) fn definitions(ctx: &Ctx<'_>, path: &str) -> DvResult<Answer> {
    let params: Vec<(String, String)> = ctx
        .params
        .iter()
        .map(|(k, v)| {
            if k.eq_ignore_ascii_case("$filter") || k.eq_ignore_ascii_case("$expand") {
                (k.clone(), enum_literals_as_strings(v))
            } else {
                (k.clone(), v.clone())
            }
        })
        .collect();
    let options = Options::from_params(&params)?;
    if options.top.is_some() {
        return Err(bad_query(
            "The query parameter $top is not supported on metadata.",
        ));
    }
    let segments = split_top(path, '/');
    let first = segments.first().map(String::as_str).unwrap_or("");
    if first.starts_with("GlobalOptionSetDefinitions") {
        let mut sets: Vec<Value> = Vec::new();
        for t in &ctx.org.tables {
            for c in t.columns.iter().filter(|c| c.global_option_set.is_some()) {
                let set = option_set(t, c);
                if !sets.iter().any(|s| s["Name"] == set["Name"]) {
                    sets.push(set);
                }
            }
        }
        return match key_of(first) {
            Some(name) => sets
                .into_iter()
                .find(|s| {
                    s["Name"].as_str().is_some_and(|n| n.eq_ignore_ascii_case(&name))
                        || s["MetadataId"] == json!(name)
                })
                .map(Answer::json)
                .ok_or_else(|| no_segment(first)),
            None => Ok(Answer::json(json!({
                "@odata.context": context(ctx, "GlobalOptionSetDefinitions", &options), "value": sets}))),
        };
    }
    let find_table = |key: &str| {
        ctx.org
            .tables
            .iter()
            .find(|t| t.logical_name.eq_ignore_ascii_case(key) || t.metadata_id.eq_ignore_ascii_case(key))
            .ok_or_else(|| no_segment(first))
    };
    match segments.as_slice() {
        [_] if key_of(first).is_none() => {
            let mut value = Vec::new();
            for t in &ctx.org.tables {
                if !filter_ok(&options, &entity_json(t))? {
                    continue;
                }
                value.push(Value::Object(entity_with(t, &options)?));
            }
            Ok(Answer::json(
                json!({"@odata.context": context(ctx, "EntityDefinitions", &options), "value": value}),
            ))
        }
        [_] => {
            let t = find_table(&key_of(first).unwrap_or_default())?;
            let mut body = Map::new();
            body.insert(
                "@odata.context".into(),
                json!(format!("{}/$entity", context(ctx, "EntityDefinitions", &options))),
            );
            body.extend(entity_with(t, &options)?);
            Ok(Answer::json(Value::Object(body)))
        }
        [_, attrs, rest @ ..] if attrs.starts_with("Attributes") => {
            let t = find_table(&key_of(first).unwrap_or_default())?;
            let cast = match rest {
                [] => None,
                [c] => Some(cast_kind(c).ok_or_else(|| no_segment(c))?),
                _ => return Err(no_segment(path)),
            };
            let ctx_name = format!(
                "EntityDefinitions('{}')/Attributes{}",
                t.logical_name,
                cast.map(|c| format!("/Microsoft.Dynamics.CRM.{c}"))
                    .unwrap_or_default()
            );
            match key_of(attrs) {
                None => Ok(Answer::json(json!({
                    "@odata.context": context(ctx, &ctx_name, &options),
                    "value": attributes_of(t, &options, cast)?,
                }))),
                Some(key) => {
                    let column = t
                        .columns
                        .iter()
                        .find(|c| {
                            c.logical_name.eq_ignore_ascii_case(&key)
                                || c.metadata_id.eq_ignore_ascii_case(&key)
                        })
                        .filter(|c| cast.is_none_or(|k| k == c.kind.metadata_type()))
                        .ok_or_else(|| no_segment(attrs))?;
                    let mut body = Map::new();
                    body.insert(
                        "@odata.context".into(),
                        json!(format!("{}/$entity", context(ctx, &ctx_name, &options))),
                    );
                    body.extend(attribute_with(t, column, &options));
                    Ok(Answer::json(Value::Object(body)))
                }
            }
        }
        _ => Err(no_segment(path)),
    }
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The service's CSDL: entity types with keys, properties and navigation properties, the
/// entity container, and `WhoAmI`.
pub(crate) fn csdl(ctx: &Ctx<'_>) -> Answer {
    let org = ctx.org;
    let mut x = String::from(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<edmx:Edmx Version=\"4.0\" xmlns:edmx=\"http://docs.oasis-open.org/odata/ns/edmx\">\n\
         <edmx:DataServices>\n<Schema Namespace=\"Microsoft.Dynamics.CRM\" Alias=\"mscrm\" xmlns=\"http://docs.oasis-open.org/odata/ns/edm\">\n\
         <EntityType Name=\"crmbaseentity\" Abstract=\"true\"/>\n",
    );
    for t in &org.tables {
        x.push_str(&format!(
            "<EntityType Name=\"{}\" BaseType=\"mscrm.crmbaseentity\">\n<Key><PropertyRef Name=\"{}\"/></Key>\n",
            xml_escape(&t.logical_name),
            xml_escape(&t.primary_id)
        ));
        for c in &t.columns {
            let nullable = if c.logical_name == t.primary_id {
                " Nullable=\"false\""
            } else {
                ""
            };
            x.push_str(&format!(
                "<Property Name=\"{}\" Type=\"{}\"{nullable}/>\n",
                xml_escape(&c.wire_name()),
                c.kind.edm_type()
            ));
        }
        for c in t.columns.iter().filter(|c| c.kind.is_lookup()) {
            for target in &c.targets {
                x.push_str(&format!(
                    "<NavigationProperty Name=\"{}\" Type=\"mscrm.{}\" Partner=\"{}\"><ReferentialConstraint Property=\"{}\" ReferencedProperty=\"{}\"/></NavigationProperty>\n",
                    xml_escape(&c.nav_name(target)),
                    xml_escape(&target.table),
                    xml_escape(&target.relationship),
                    xml_escape(&c.wire_name()),
                    xml_escape(&org.table(&target.table).map(|tt| tt.primary_id.clone()).unwrap_or_default()),
                ));
            }
        }
        for (name, nav) in org.collection_navs(t) {
            let partner = nav
                .column
                .targets
                .iter()
                .find(|tg| tg.relationship == name)
                .map(|tg| nav.column.nav_name(tg))
                .unwrap_or_default();
            x.push_str(&format!(
                "<NavigationProperty Name=\"{}\" Type=\"Collection(mscrm.{})\" Partner=\"{}\"/>\n",
                xml_escape(&name),
                xml_escape(&nav.table.logical_name),
                xml_escape(&partner)
            ));
        }
        x.push_str("</EntityType>\n");
    }
    x.push_str(
        "<ComplexType Name=\"WhoAmIResponse\"><Property Name=\"BusinessUnitId\" Type=\"Edm.Guid\" Nullable=\"false\"/>\
         <Property Name=\"UserId\" Type=\"Edm.Guid\" Nullable=\"false\"/><Property Name=\"OrganizationId\" Type=\"Edm.Guid\" Nullable=\"false\"/></ComplexType>\n\
         <Function Name=\"WhoAmI\"><ReturnType Type=\"mscrm.WhoAmIResponse\" Nullable=\"false\"/></Function>\n\
         <EntityContainer Name=\"System\">\n",
    );
    for t in &org.tables {
        x.push_str(&format!(
            "<EntitySet Name=\"{}\" EntityType=\"Microsoft.Dynamics.CRM.{}\"/>\n",
            xml_escape(&t.entity_set_name),
            xml_escape(&t.logical_name)
        ));
    }
    x.push_str("<FunctionImport Name=\"WhoAmI\" Function=\"Microsoft.Dynamics.CRM.WhoAmI\"/>\n</EntityContainer>\n</Schema>\n</edmx:DataServices>\n</edmx:Edmx>\n");
    Answer {
        status: http::StatusCode::OK,
        headers: vec![],
        body: AnswerBody::Xml(x),
    }
}
