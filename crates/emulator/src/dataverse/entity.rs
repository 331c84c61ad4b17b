//! Entity sets: collection reads with paging cookies and change tracking, single rows,
//! related collections, and writes (create, update with `If-Match`, delete).
//!
//! Paging is stateless: the `$skiptoken` is Dataverse's cookie
//! `<cookie pagenumber="2" pagingcookie="…" istracking="False" />` whose inner (doubly
//! percent-encoded) cookie names the last primary key served and, for change tracking, the
//! version snapshot of the round; a read resumes after that key in the same order.
//! Delta tokens are `{version}!{MM/dd/yyyy HH:mm:ss}`.
use http::{HeaderMap, Method, StatusCode};
use jiff::Timestamp;
use serde_json::{Map, Value, json};

use super::model::{ColumnKind, Org, Row, Table};
use super::query::{Options, Prefer, rewrite};
use super::render::{
    Render, context_projection, filter_record, nav_paths, related_rows, sort_rows, validate,
};
use super::{Answer, AnswerBody, Caller, Ctx, DvError, DvResult, bad_query, codes, error, no_segment};
use crate::world::World;

const MAX_PAGE: usize = 5_000;
const MAX_EXPANDS: usize = 15;

/// `accounts`, `accounts(id)`, `accounts(id)/contact_customer_accounts`.
enum Target<'a> {
    Collection(&'a Table),
    Single(&'a Table, String),
    Related {
        parent: &'a Table,
        id: String,
        nav: String,
    },
    /// `accounts/$count`.
    Count(&'a Table),
}

fn split_key(segment: &str) -> (&str, Option<&str>) {
    match segment.find('(') {
        Some(open) if segment.ends_with(')') => {
            (&segment[..open], Some(&segment[open + 1..segment.len() - 1]))
        }
        _ => (segment, None),
    }
}

fn parse_id(key: &str) -> DvResult<String> {
    let key = key.trim().trim_matches(|c| c == '{' || c == '}');
    uuid::Uuid::parse_str(key)
        .map(|u| u.to_string())
        .map_err(|_| bad_query(format!("Unrecognized 'Edm.Guid' literal '{key}'.")))
}

fn target<'a>(org: &'a Org, path: &str) -> DvResult<Target<'a>> {
    let mut segments = path.split('/');
    let first = segments.next().unwrap_or("");
    let (set, key) = split_key(first);
    let table = org.table_by_set(set).ok_or_else(|| no_segment(set))?;
    let second = segments.next();
    if segments.next().is_some() {
        return Err(no_segment(path));
    }
    match (key, second) {
        (None, None) => Ok(Target::Collection(table)),
        (Some(k), None) => Ok(Target::Single(table, parse_id(k)?)),
        (Some(k), Some(nav)) => Ok(Target::Related {
            parent: table,
            id: parse_id(k)?,
            nav: nav.to_owned(),
        }),
        (None, Some("$count")) => Ok(Target::Count(table)),
        (None, Some(s)) => Err(no_segment(s)),
    }
}

fn not_found(table: &Table, id: &str) -> DvError {
    error(
        StatusCode::NOT_FOUND,
        codes::NOT_FOUND,
        format!("{} With Id = {id} Does Not Exist", table.logical_name),
    )
}

pub(crate) fn read(ctx: &Ctx<'_>, path: &str) -> DvResult<Answer> {
    let prefer = Prefer::parse(ctx.headers);
    let mut options = Options::from_params(&ctx.params)?;
    if options.expand_count() > MAX_EXPANDS {
        return Err(bad_query(format!(
            "Number of $expand options in the query exceeds the limit of {MAX_EXPANDS}."
        )));
    }
    let render = Render {
        org: ctx.org,
        api: &ctx.api,
        prefer: &prefer,
    };
    match target(ctx.org, path)? {
        Target::Single(table, id) => {
            ctx.caller.require_read(table)?;
            let nested = options.expand.iter().any(|e| !e.options.expand.is_empty());
            validate(ctx.org, table, &options, nested)?;
            let row = table.row(&id).ok_or_else(|| not_found(table, &id))?;
            let mut body = Map::new();
            body.insert(
                "@odata.context".into(),
                json!(format!(
                    "{}/$metadata#{}{}/$entity",
                    ctx.api,
                    table.entity_set_name,
                    context_projection(&options)
                )),
            );
            body.extend(render.row(table, row, &options)?);
            let mut answer = Answer::json(Value::Object(body));
            answer
                .headers
                .push(("ETag".into(), format!("W/\"{}\"", row.version)));
            Ok(answer)
        }
        Target::Collection(table) => {
            ctx.caller.require_read(table)?;
            if let Some(token) = ctx.param("$deltatoken") {
                return delta(ctx, &render, table, &options, token);
            }
            if prefer.track_changes {
                if options.filter.is_some()
                    || !options.orderby.is_empty()
                    || !options.expand.is_empty()
                    || options.top.is_some()
                {
                    return Err(bad_query(
                        "$filter, $orderby, $expand and $top are not supported with change tracking (Prefer: odata.track-changes).",
                    ));
                }
                if !table.change_tracking {
                    return Err(bad_query(format!(
                        "Change tracking is not enabled for the entity '{}'.",
                        table.logical_name
                    )));
                }
            }
            rewrite_filter(ctx, table, &mut options)?;
            let nested = options.expand.iter().any(|e| !e.options.expand.is_empty());
            validate(ctx.org, table, &options, nested)?;
            let navs = options.filter.as_ref().map(nav_paths).unwrap_or_default();
            let mut rows: Vec<&Row> = Vec::new();
            for row in &table.rows {
                if let Some(filter) = &options.filter
                    && !super::query::matches(filter, &filter_record(ctx.org, table, row, &navs))?
                {
                    continue;
                }
                rows.push(row);
            }
            sort_rows(table, &mut rows, &options.orderby);
            page(
                ctx,
                &render,
                table,
                rows,
                &options,
                &prefer,
                &table.entity_set_name.clone(),
            )
        }
        Target::Count(table) => {
            ctx.caller.require_read(table)?;
            rewrite_filter(ctx, table, &mut options)?;
            let navs = options.filter.as_ref().map(nav_paths).unwrap_or_default();
            let mut count = 0usize;
            for row in &table.rows {
                if let Some(filter) = &options.filter
                    && !super::query::matches(filter, &filter_record(ctx.org, table, row, &navs))?
                {
                    continue;
                }
                count += 1;
            }
            Ok(Answer {
                status: StatusCode::OK,
                headers: vec![],
                body: AnswerBody::Text(count.min(MAX_PAGE).to_string()),
            })
        }
        Target::Related { parent, id, nav } => {
            ctx.caller.require_read(parent)?;
            let row = parent.row(&id).ok_or_else(|| not_found(parent, &id))?;
            let collection = ctx
                .org
                .collection_nav(parent, &nav)
                .ok_or_else(|| no_segment(&nav))?;
            ctx.caller.require_read(collection.table)?;
            rewrite_filter(ctx, collection.table, &mut options)?;
            validate(ctx.org, collection.table, &options, false)?;
            let rows = related_rows(
                ctx.org,
                parent,
                &row.id,
                collection.table,
                collection.column,
                &options,
            )?;
            let context = format!("{}({})/{nav}", parent.entity_set_name, row.id);
            page(ctx, &render, collection.table, rows, &options, &prefer, &context)
        }
    }
}

fn rewrite_filter(ctx: &Ctx<'_>, table: &Table, options: &mut Options) -> DvResult<()> {
    if let Some(filter) = &options.filter {
        let date_only = |p: &str| {
            table
                .column_by_wire(p)
                .is_some_and(|c| c.kind == ColumnKind::Date)
        };
        options.filter = Some(rewrite(filter, ctx.now, &ctx.caller.user_id, &date_only)?);
    }
    Ok(())
}

// ---- paging cookies ----

fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len() * 3);
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~$,()'=:*@/!;".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The inner paging cookie's encoding (as .NET's URL encoder: lower-case hex, `=` encoded).
fn encode_inner(text: &str) -> String {
    let mut out = String::with_capacity(text.len() * 3);
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-._".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02x}"));
        }
    }
    out
}

fn decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(b) = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn xml_attr(text: &str, name: &str) -> Option<String> {
    let needle = format!("{name}=\"");
    let start = text.find(&needle)? + needle.len();
    let end = text[start..].find('"')? + start;
    Some(text[start..end].to_owned())
}

/// Where a page continues: the page number, the last key served, the round's version snapshot
/// and (delta) the last version served.
#[derive(Debug, Default)]
struct Cookie {
    page: usize,
    last: Option<String>,
    snapshot: Option<u64>,
    last_version: Option<u64>,
}

fn cookie_token(
    primary: &str,
    page: usize,
    last: &Row,
    first: &Row,
    tracking: bool,
    snapshot: Option<u64>,
    last_version: Option<u64>,
) -> String {
    let mut extra = String::new();
    if let Some(v) = snapshot {
        extra.push_str(&format!(" version=\"{v}\""));
    }
    if let Some(v) = last_version {
        extra.push_str(&format!(" lastversion=\"{v}\""));
    }
    let inner = format!(
        "<cookie page=\"{page}\"{extra}><{primary} last=\"{{{}}}\" first=\"{{{}}}\" /></cookie>",
        last.id.to_ascii_uppercase(),
        first.id.to_ascii_uppercase()
    );
    format!(
        "<cookie pagenumber=\"{}\" pagingcookie=\"{}\" istracking=\"{}\" />",
        page + 1,
        encode_inner(&encode_inner(&inner)),
        if tracking { "True" } else { "False" }
    )
}

fn parse_cookie(token: &str, primary: &str) -> DvResult<Cookie> {
    let invalid = || bad_query("The $skiptoken is not a valid paging cookie.");
    let page: usize = xml_attr(token, "pagenumber")
        .and_then(|p| p.parse().ok())
        .ok_or_else(invalid)?;
    let inner = decode(&decode(&xml_attr(token, "pagingcookie").ok_or_else(invalid)?));
    let key_start = inner.find(&format!("<{primary} ")).ok_or_else(invalid)?;
    let last = xml_attr(&inner[key_start..], "last")
        .map(|l| l.trim_matches(|c| c == '{' || c == '}').to_ascii_lowercase());
    Ok(Cookie {
        page,
        last,
        snapshot: xml_attr(&inner, "version").and_then(|v| v.parse().ok()),
        last_version: xml_attr(&inner, "lastversion").and_then(|v| v.parse().ok()),
    })
}

/// The request's query string without `$skiptoken` (and `$deltatoken` when `drop_delta`).
fn base_query(ctx: &Ctx<'_>, drop_delta: bool) -> Vec<String> {
    ctx.params
        .iter()
        .filter(|(k, _)| {
            !(k.eq_ignore_ascii_case("$skiptoken") || drop_delta && k.eq_ignore_ascii_case("$deltatoken"))
        })
        .map(|(k, v)| format!("{k}={}", encode(v)))
        .collect()
}

fn link(ctx: &Ctx<'_>, context: &str, mut query: Vec<String>, extra: (&str, String)) -> String {
    // Delta tokens are encoded as Dataverse does (`919042%2108%2f22%2f2017%2008%3a10%3a44`).
    let value = if extra.0 == "$deltatoken" {
        encode_inner(&extra.1)
    } else {
        encode(&extra.1)
    };
    query.push(format!("{}={value}", extra.0));
    format!("{}/{context}?{}", ctx.api, query.join("&"))
}

fn page_size(prefer: &Prefer) -> (usize, Option<String>) {
    match prefer.max_page_size {
        Some(n) if n > 0 && n <= MAX_PAGE => (n, Some(format!("odata.maxpagesize={n}"))),
        _ => (MAX_PAGE, None),
    }
}

fn delta_token(version: u64, now: Timestamp) -> String {
    format!("{version}!{}", now.strftime("%m/%d/%Y %H:%M:%S"))
}

#[allow(clippy::too_many_arguments)]
fn page(
    ctx: &Ctx<'_>,
    render: &Render<'_>,
    table: &Table,
    rows: Vec<&Row>,
    options: &Options,
    prefer: &Prefer,
    context: &str,
) -> DvResult<Answer> {
    let total = rows.len();
    let tracking = prefer.track_changes;
    let (size, applied) = page_size(prefer);
    let cookie = match ctx.param("$skiptoken") {
        Some(token) => parse_cookie(token, &table.primary_id)?,
        None => Cookie::default(),
    };
    // The skip token's page number is the page it asks for; the first page has none.
    let page_number = if ctx.param("$skiptoken").is_some() {
        cookie.page
    } else {
        1
    };
    if table.logical_name == "contact" && ctx.malformed_page == Some(page_number) {
        return Ok(truncated());
    }
    let start = match &cookie.last {
        Some(last) => match rows.iter().position(|r| r.id.eq_ignore_ascii_case(last)) {
            Some(i) => i + 1,
            None => (cookie.page.saturating_sub(1) * size).min(total),
        },
        None => 0,
    };
    let (end, more) = match options.top {
        Some(top) if cookie.last.is_none() => (top.min(total), false),
        _ => {
            let end = (start + size).min(total);
            (end, end < total)
        }
    };
    let snapshot = cookie.snapshot.unwrap_or(ctx.org.version);
    let mut body = Map::new();
    body.insert(
        "@odata.context".into(),
        json!(format!(
            "{}/$metadata#{context}{}",
            ctx.api,
            context_projection(options)
        )),
    );
    if options.count {
        body.insert("@odata.count".into(), json!(total.min(MAX_PAGE)));
    }
    if prefer.wants("Microsoft.Dynamics.CRM.totalrecordcount") {
        body.insert(
            "@Microsoft.Dynamics.CRM.totalrecordcount".into(),
            json!(total.min(MAX_PAGE)),
        );
    }
    if prefer.wants("Microsoft.Dynamics.CRM.totalrecordcountlimitexceeded") {
        body.insert(
            "@Microsoft.Dynamics.CRM.totalrecordcountlimitexceeded".into(),
            json!(total > MAX_PAGE),
        );
    }
    let slice = rows.get(start..end).unwrap_or(&[]);
    let mut values = Vec::with_capacity(slice.len());
    for row in slice {
        values.push(Value::Object(render.row(table, row, options)?));
    }
    body.insert("value".into(), Value::Array(values));
    if more && let (Some(first), Some(last)) = (slice.first(), slice.last()) {
        let page_number = cookie.page.max(1);
        let token = cookie_token(
            &table.primary_id,
            page_number,
            last,
            first,
            tracking,
            tracking.then_some(snapshot),
            None,
        );
        body.insert(
            "@odata.nextLink".into(),
            json!(link(ctx, context, base_query(ctx, false), ("$skiptoken", token))),
        );
    } else if tracking {
        let query: Vec<String> = base_query(ctx, true);
        body.insert(
            "@odata.deltaLink".into(),
            json!(link(
                ctx,
                context,
                query,
                ("$deltatoken", delta_token(snapshot, ctx.now))
            )),
        );
    }
    let mut answer = Answer::json(Value::Object(body));
    let mut applied: Vec<String> = applied.into_iter().collect();
    if tracking {
        applied.insert(0, "odata.track-changes".into());
    }
    if !prefer.annotations.is_empty() {
        applied.push(format!(
            "odata.include-annotations=\"{}\"",
            prefer.annotations.join(",")
        ));
    }
    if !applied.is_empty() {
        answer
            .headers
            .push(("Preference-Applied".into(), applied.join(",")));
    }
    Ok(answer)
}

/// A page cut off in the middle of its JSON: what no retry can read.
fn truncated() -> Answer {
    Answer {
        status: StatusCode::OK,
        headers: vec![],
        body: AnswerBody::Text("{\"value\":[{\"contactid\":".into()),
    }
}

fn parse_delta_token(token: &str) -> Option<(u64, Timestamp)> {
    let (version, when) = token.split_once('!')?;
    let version = version.trim().parse().ok()?;
    let when = jiff::civil::DateTime::strptime("%m/%d/%Y %H:%M:%S", when.trim()).ok()?;
    let when = when.to_zoned(jiff::tz::TimeZone::UTC).ok()?.timestamp();
    Some((version, when))
}

/// A delta read: rows changed and rows deleted since the token's version, oldest change first.
fn delta(
    ctx: &Ctx<'_>,
    render: &Render<'_>,
    table: &Table,
    options: &Options,
    token: &str,
) -> DvResult<Answer> {
    if options.filter.is_some()
        || !options.orderby.is_empty()
        || !options.expand.is_empty()
        || options.top.is_some()
    {
        return Err(bad_query(
            "$filter, $orderby, $expand and $top are not supported with change tracking (Prefer: odata.track-changes).",
        ));
    }
    validate(ctx.org, table, options, false)?;
    let (since, issued) = parse_delta_token(token)
        .filter(|(v, _)| *v <= ctx.org.version)
        .ok_or_else(|| bad_query(format!("The delta token '{token}' is not valid.")))?;
    let max_age = jiff::SignedDuration::from_hours(i64::from(ctx.org.expire_change_tracking_in_days) * 24);
    let expired = ctx.now.duration_since(issued) > max_age
        || ctx
            .org
            .change_tokens_expired_before
            .is_some_and(|before| issued <= before);
    if expired {
        return Err(error(
            StatusCode::BAD_REQUEST,
            codes::EXPIRED_VERSION_STAMP,
            "Version stamp associated with the client has expired. Please perform a full sync.",
        ));
    }
    let prefer = render.prefer;
    let (size, page_applied) = page_size(prefer);
    let cookie = match ctx.param("$skiptoken") {
        Some(t) => parse_cookie(t, &table.primary_id)?,
        None => Cookie::default(),
    };
    let snapshot = cookie.snapshot.unwrap_or(ctx.org.version);
    let after = cookie.last_version.unwrap_or(since);
    enum Change<'a> {
        Row(&'a Row),
        Deleted(&'a str),
    }
    let mut changes: Vec<(u64, Change<'_>)> = table
        .rows
        .iter()
        .filter(|r| r.version > after && r.version <= snapshot)
        .map(|r| (r.version, Change::Row(r)))
        .chain(
            table
                .tombstones
                .iter()
                .filter(|d| d.version > after && d.version <= snapshot)
                .map(|d| (d.version, Change::Deleted(d.id.as_str()))),
        )
        .collect();
    changes.sort_by_key(|(v, _)| *v);
    let total = changes.len();
    let more = total > size;
    changes.truncate(size);
    let set = &table.entity_set_name;
    let mut body = Map::new();
    body.insert(
        "@odata.context".into(),
        json!(format!(
            "{}/$metadata#{set}{}/$delta",
            ctx.api,
            context_projection(options)
        )),
    );
    if options.count {
        body.insert("@odata.count".into(), json!(total.min(MAX_PAGE)));
    }
    let mut values = Vec::with_capacity(changes.len());
    let mut last_row: Option<&Row> = None;
    let mut first_row: Option<&Row> = None;
    for (_, change) in &changes {
        match change {
            Change::Row(r) => {
                first_row = first_row.or(Some(r));
                last_row = Some(r);
                values.push(Value::Object(render.row(table, r, options)?));
            }
            Change::Deleted(id) => values.push(json!({
                "@odata.context": format!("{}/$metadata#{set}/$deletedEntity", ctx.api),
                "id": id,
                "reason": "deleted",
            })),
        }
    }
    body.insert("value".into(), Value::Array(values));
    let last_version = changes.last().map(|(v, _)| *v);
    if more {
        let placeholder = Row {
            id: uuid::Uuid::nil().to_string(),
            version: 0,
            created_on: ctx.now,
            modified_on: ctx.now,
            values: Map::new(),
        };
        let token = cookie_token(
            &table.primary_id,
            cookie.page.max(1),
            last_row.unwrap_or(&placeholder),
            first_row.unwrap_or(&placeholder),
            true,
            Some(snapshot),
            last_version,
        );
        body.insert(
            "@odata.nextLink".into(),
            json!(link(ctx, set, base_query(ctx, false), ("$skiptoken", token))),
        );
    } else {
        body.insert(
            "@odata.deltaLink".into(),
            json!(link(
                ctx,
                set,
                base_query(ctx, true),
                ("$deltatoken", delta_token(snapshot, ctx.now))
            )),
        );
    }
    let mut answer = Answer::json(Value::Object(body));
    let mut applied: Vec<String> = vec!["odata.track-changes".into()];
    applied.extend(page_applied);
    answer
        .headers
        .push(("Preference-Applied".into(), applied.join(",")));
    Ok(answer)
}

// ---- writes ----

/// Converts a request body (wire names, `nav@odata.bind`) into stored values, validating types
/// and option values.
fn stored_values(org: &Org, table: &Table, body: &Map<String, Value>) -> DvResult<Map<String, Value>> {
    let invalid = |m: String| error(StatusCode::BAD_REQUEST, codes::VALIDATION, m);
    let mut out = Map::new();
    for (key, value) in body {
        if key.starts_with("@odata") {
            continue;
        }
        if let Some(nav_name) = key.strip_suffix("@odata.bind") {
            let nav = table.single_nav(nav_name).ok_or_else(|| {
                bad_query(format!(
                    "An undeclared property '{nav_name}' which only has property annotations in the payload but no property value was found in the payload."
                ))
            })?;
            if value.is_null() {
                out.insert(nav.column.logical_name.clone(), Value::Null);
                continue;
            }
            let reference = value
                .as_str()
                .ok_or_else(|| invalid(format!("{key} must be a string like /accounts(<id>).")))?;
            let tail = reference.rsplit('/').next().unwrap_or(reference);
            let (set, id) = split_key(tail);
            let target = org
                .table_by_set(set)
                .filter(|t| t.logical_name == nav.target.table)
                .ok_or_else(|| {
                    invalid(format!(
                        "{key}: '{set}' is not the entity set of {}.",
                        nav.target.table
                    ))
                })?;
            let id = parse_id(id.unwrap_or(""))?;
            if target.row(&id).is_none() {
                return Err(not_found(target, &id));
            }
            out.insert(
                nav.column.logical_name.clone(),
                json!({"id": id, "table": target.logical_name}),
            );
            continue;
        }
        let column = table.column(key).filter(|c| !c.kind.is_lookup()).ok_or_else(|| {
            bad_query(format!(
                "The property '{key}' does not exist on type 'Microsoft.Dynamics.CRM.{}'. Make sure to only use property names that are defined by the type.",
                table.logical_name
            ))
        })?;
        if column.logical_name == table.primary_id
            || matches!(column.logical_name.as_str(), "createdon" | "modifiedon")
        {
            continue;
        }
        if value.is_null() {
            out.insert(key.clone(), Value::Null);
            continue;
        }
        let wrong = || {
            invalid(format!(
                "Cannot convert the literal '{value}' to the expected type of '{key}'."
            ))
        };
        let out_of_range = |v: &str| {
            invalid(format!(
                "A validation error occurred. The value {v} of '{key}' on record of type '{}' is outside the valid range.",
                table.logical_name
            ))
        };
        match column.kind {
            ColumnKind::String | ColumnKind::Memo => {
                value.as_str().ok_or_else(wrong)?;
            }
            ColumnKind::Integer => {
                value.as_i64().ok_or_else(wrong)?;
            }
            ColumnKind::Decimal | ColumnKind::Money => {
                value.as_f64().ok_or_else(wrong)?;
            }
            ColumnKind::Boolean => {
                value.as_bool().ok_or_else(wrong)?;
            }
            ColumnKind::DateTime => {
                value
                    .as_str()
                    .and_then(|s| s.parse::<Timestamp>().ok())
                    .ok_or_else(wrong)?;
            }
            ColumnKind::Date => {
                value
                    .as_str()
                    .and_then(|s| s.parse::<jiff::civil::Date>().ok())
                    .ok_or_else(wrong)?;
            }
            ColumnKind::Picklist | ColumnKind::State | ColumnKind::Status => {
                let v = value.as_i64().ok_or_else(wrong)?;
                if column.label(v).is_none() {
                    return Err(out_of_range(&v.to_string()));
                }
            }
            ColumnKind::MultiSelectPicklist => {
                let text = value.as_str().ok_or_else(wrong)?;
                let parts: Vec<&str> = text.split(',').map(str::trim).filter(|p| !p.is_empty()).collect();
                if parts.len() > 150 {
                    return Err(invalid(format!("'{key}' holds more than 150 options.")));
                }
                for p in &parts {
                    let v: i64 = p.parse().map_err(|_| wrong())?;
                    if column.label(v).is_none() {
                        return Err(out_of_range(p));
                    }
                }
                out.insert(key.clone(), json!(parts.join(",")));
                continue;
            }
            ColumnKind::Uniqueidentifier => {
                value.as_str().ok_or_else(wrong)?;
            }
            ColumnKind::Lookup | ColumnKind::Customer | ColumnKind::Owner => return Err(wrong()),
        }
        out.insert(column.logical_name.clone(), value.clone());
    }
    Ok(out)
}

#[allow(clippy::too_many_arguments)]
pub(crate) fn write(
    world: &mut World,
    org_name: &str,
    api: String,
    caller: Caller,
    now: Timestamp,
    method: &Method,
    path: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> DvResult<Answer> {
    let org = world
        .dataverse_org_mut(org_name)
        .ok_or_else(|| no_segment(org_name))?;
    let (table_name, id) = match target(org, path.trim_end_matches('/'))? {
        Target::Collection(t) if *method == Method::POST => (t.logical_name.clone(), None),
        Target::Single(t, id) if matches!(*method, Method::PATCH | Method::DELETE) => {
            (t.logical_name.clone(), Some(id))
        }
        _ => {
            return Err(error(
                StatusCode::METHOD_NOT_ALLOWED,
                codes::BAD_QUERY,
                format!("The HTTP verb {method} is not supported on '{path}'."),
            ));
        }
    };
    let table = org.table(&table_name).ok_or_else(|| no_segment(&table_name))?;
    let privilege = match *method {
        Method::POST => "Create",
        Method::DELETE => "Delete",
        _ => "Write",
    };
    caller.require_write(table, privilege)?;
    let set = table.entity_set_name.clone();
    let parsed = || -> DvResult<Map<String, Value>> {
        match serde_json::from_slice::<Value>(body) {
            Ok(Value::Object(map)) => Ok(map),
            _ => Err(bad_query("The request body is not a JSON object.")),
        }
    };
    let if_match = headers.get(http::header::IF_MATCH).and_then(|v| v.to_str().ok());
    let no_content = |id: &str| Answer {
        status: StatusCode::NO_CONTENT,
        headers: vec![("OData-EntityId".into(), format!("{api}/{set}({id})"))],
        body: AnswerBody::Empty,
    };
    match (method.clone(), id) {
        (Method::POST, _) => {
            let map = parsed()?;
            let requested_id = map
                .get(&table.primary_id)
                .and_then(Value::as_str)
                .map(parse_id)
                .transpose()?;
            let mut values = stored_values(org, table, &map)?;
            values.retain(|_, v| !v.is_null());
            let id = org
                .insert_row(&table_name, requested_id, values, now)
                .map_err(|e| error(StatusCode::PRECONDITION_FAILED, codes::BAD_QUERY, e.to_string()))?;
            if Prefer::parse(headers).return_representation {
                return representation(org, &api, &table_name, &id, headers, StatusCode::CREATED);
            }
            Ok(no_content(&id))
        }
        (Method::PATCH, Some(id)) => {
            let map = parsed()?;
            let values = stored_values(org, table, &map)?;
            match table.row(&id) {
                Some(row) => {
                    if let Some(tag) = if_match
                        && tag.trim() != "*"
                        && tag.trim() != format!("W/\"{}\"", row.version)
                    {
                        return Err(error(
                            StatusCode::PRECONDITION_FAILED,
                            codes::CONCURRENCY,
                            "The version of the existing record doesn't match the RowVersion property provided.",
                        ));
                    }
                    org.update_row(&table_name, &id, values, now)
                        .map_err(|e| error(StatusCode::NOT_FOUND, codes::NOT_FOUND, e.to_string()))?;
                }
                None if if_match.is_some() => return Err(not_found(table, &id)),
                None => {
                    let mut values = values;
                    values.retain(|_, v| !v.is_null());
                    org.insert_row(&table_name, Some(id.clone()), values, now)
                        .map_err(|e| {
                            error(StatusCode::PRECONDITION_FAILED, codes::BAD_QUERY, e.to_string())
                        })?;
                }
            }
            if Prefer::parse(headers).return_representation {
                return representation(org, &api, &table_name, &id, headers, StatusCode::OK);
            }
            Ok(no_content(&id))
        }
        (Method::DELETE, Some(id)) => {
            org.delete_row(&table_name, &id, now)
                .map_err(|e| error(StatusCode::NOT_FOUND, codes::NOT_FOUND, e.to_string()))?;
            Ok(Answer {
                status: StatusCode::NO_CONTENT,
                headers: vec![],
                body: AnswerBody::Empty,
            })
        }
        _ => Err(bad_query("Unsupported request.")),
    }
}

/// `Prefer: return=representation`: the row as written (all columns, annotations as asked).
fn representation(
    org: &Org,
    api: &str,
    table_name: &str,
    id: &str,
    headers: &HeaderMap,
    status: StatusCode,
) -> DvResult<Answer> {
    let table = org.table(table_name).ok_or_else(|| no_segment(table_name))?;
    let row = table.row(id).ok_or_else(|| not_found(table, id))?;
    let prefer = Prefer::parse(headers);
    let render = Render {
        org,
        api,
        prefer: &prefer,
    };
    let mut body = Map::new();
    body.insert(
        "@odata.context".into(),
        json!(format!("{api}/$metadata#{}/$entity", table.entity_set_name)),
    );
    body.extend(render.row(table, row, &Options::default())?);
    Ok(Answer {
        status,
        headers: vec![
            (
                "OData-EntityId".into(),
                format!("{api}/{}({id})", table.entity_set_name),
            ),
            ("ETag".into(), format!("W/\"{}\"", row.version)),
            ("Preference-Applied".into(), "return=representation".into()),
        ],
        body: AnswerBody::Json(Value::Object(body)),
    })
}
