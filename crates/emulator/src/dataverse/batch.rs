//! `POST {api}/$batch`: a `multipart/mixed` body of `application/http` parts (and change sets,
//! nested `multipart/mixed`), each run as its own request in order; the answer is
//! `multipart/mixed` with one `application/http` part per request, each with a full status line.
//! Change sets run part by part (no rollback).
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use jiff::Timestamp;

use super::{Answer, AnswerBody, Caller, Ctx, DvResult, bad_query, entity, no_segment, read};
use crate::world::World;

fn boundary_of(content_type: &str) -> Option<String> {
    content_type.split(';').find_map(|p| {
        let (k, v) = p.trim().split_once('=')?;
        k.trim()
            .eq_ignore_ascii_case("boundary")
            .then(|| v.trim().trim_matches('"').to_owned())
    })
}

/// Splits at the first blank line (CRLF or LF).
fn split_head(text: &str) -> (&str, &str) {
    if let Some(i) = text.find("\r\n\r\n") {
        (&text[..i], &text[i + 4..])
    } else if let Some(i) = text.find("\n\n") {
        (&text[..i], &text[i + 2..])
    } else {
        (text, "")
    }
}

fn header_lines(head: &str) -> Vec<(String, String)> {
    head.lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect()
}

fn parts(body: &str, boundary: &str) -> Vec<String> {
    let delimiter = format!("--{boundary}");
    body.split(&delimiter)
        .skip(1)
        .take_while(|p| !p.starts_with("--"))
        .map(|p| p.trim_start_matches(['\r', '\n']).to_owned())
        .collect()
}

fn status_line(status: StatusCode) -> String {
    format!(
        "HTTP/1.1 {} {}",
        status.as_u16(),
        status.canonical_reason().unwrap_or("")
    )
}

#[allow(clippy::too_many_arguments)]
fn run_part(
    world: &mut World,
    org_name: &str,
    api: &str,
    caller: &Caller,
    now: Timestamp,
    part: &str,
) -> String {
    let (part_head, http_text) = split_head(part);
    let content_id = header_lines(part_head)
        .into_iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-id"))
        .map(|(_, v)| v);
    let (request_head, body) = split_head(http_text);
    let mut lines = request_head.lines();
    let request_line = lines.next().unwrap_or("").trim();
    let mut words = request_line.split_whitespace();
    let method = words.next().and_then(|m| Method::from_bytes(m.as_bytes()).ok());
    let target = words.next().unwrap_or("");
    let mut headers = HeaderMap::new();
    for (k, v) in header_lines(&lines.collect::<Vec<_>>().join("\n")) {
        if let (Ok(name), Ok(value)) = (HeaderName::from_bytes(k.as_bytes()), HeaderValue::from_str(&v)) {
            headers.append(name, value);
        }
    }
    let result = match method {
        None => Err(bad_query(format!(
            "Malformed request line in a batch part: '{request_line}'."
        ))),
        Some(method) => run_request(
            world,
            org_name,
            api,
            caller,
            now,
            &method,
            target,
            &headers,
            body.trim_end(),
        ),
    };
    let (status, extra, body) = match result {
        Ok(answer) => {
            let body = match answer.body {
                AnswerBody::Json(v) => serde_json::to_string(&v).unwrap_or_default(),
                AnswerBody::Xml(x) | AnswerBody::Multipart(_, x) | AnswerBody::Text(x) => x,
                AnswerBody::Empty => String::new(),
            };
            (answer.status, answer.headers, body)
        }
        Err(e) => (
            e.status,
            vec![],
            serde_json::json!({"error": {"code": e.code, "message": e.message}}).to_string(),
        ),
    };
    let mut out = String::from("Content-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n");
    if let Some(id) = content_id {
        out.push_str(&format!("Content-ID: {id}\r\n"));
    }
    out.push_str("\r\n");
    out.push_str(&status_line(status));
    out.push_str("\r\n");
    if !body.is_empty() {
        out.push_str("Content-Type: application/json; odata.metadata=minimal\r\n");
    }
    out.push_str("OData-Version: 4.0\r\n");
    for (k, v) in extra {
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    out.push_str("\r\n");
    out.push_str(&body);
    out.push_str("\r\n");
    out
}

#[allow(clippy::too_many_arguments)]
fn run_request(
    world: &mut World,
    org_name: &str,
    api: &str,
    caller: &Caller,
    now: Timestamp,
    method: &Method,
    target: &str,
    headers: &HeaderMap,
    body: &str,
) -> DvResult<Answer> {
    // Absolute (`https://…/api/data/v9.2/accounts`), host-relative (`/org/x/api/data/v9.2/…`) or relative.
    let after_api = match target.find("/api/data/v9.2/") {
        Some(i) => &target[i + "/api/data/v9.2/".len()..],
        None => target.trim_start_matches('/'),
    };
    let (path, query) = after_api.split_once('?').unwrap_or((after_api, ""));
    let path = super::percent_decode(path);
    if *method == Method::GET {
        let org = world
            .dataverse_org(org_name)
            .ok_or_else(|| no_segment(org_name))?;
        let ctx = Ctx {
            org,
            api: api.to_owned(),
            caller: caller.clone(),
            now,
            path,
            params: url::form_urlencoded::parse(query.as_bytes())
                .into_owned()
                .collect(),
            headers,
            malformed_page: None,
        };
        read(&ctx)
    } else {
        entity::write(
            world,
            org_name,
            api.to_owned(),
            caller.clone(),
            now,
            method,
            &path,
            headers,
            body.as_bytes(),
        )
    }
}

/// Runs a batch; `content_type` is the request's (with the boundary).
pub(crate) fn run(
    world: &mut World,
    org_name: &str,
    api: &str,
    caller: &Caller,
    now: Timestamp,
    content_type: &str,
    body: &[u8],
) -> DvResult<Answer> {
    let boundary = boundary_of(content_type)
        .ok_or_else(|| bad_query("A $batch request needs Content-Type: multipart/mixed with a boundary."))?;
    let text = String::from_utf8_lossy(body);
    let response_boundary = format!("batchresponse_{}", uuid::Uuid::new_v4());
    let mut out = String::new();
    for part in parts(&text, &boundary) {
        let (head, inner) = split_head(&part);
        let nested = header_lines(head)
            .into_iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("content-type"))
            .and_then(|(_, v)| {
                v.to_ascii_lowercase()
                    .starts_with("multipart/mixed")
                    .then(|| boundary_of(&v))
            })
            .flatten();
        out.push_str(&format!("--{response_boundary}\r\n"));
        match nested {
            Some(changeset) => {
                let changeset_response = format!("changesetresponse_{}", uuid::Uuid::new_v4());
                out.push_str(&format!(
                    "Content-Type: multipart/mixed; boundary={changeset_response}\r\n\r\n"
                ));
                for item in parts(inner, &changeset) {
                    out.push_str(&format!("--{changeset_response}\r\n"));
                    out.push_str(&run_part(world, org_name, api, caller, now, &item));
                }
                out.push_str(&format!("--{changeset_response}--\r\n"));
            }
            None => out.push_str(&run_part(world, org_name, api, caller, now, &part)),
        }
    }
    out.push_str(&format!("--{response_boundary}--\r\n"));
    Ok(Answer {
        status: StatusCode::OK,
        headers: vec![],
        body: AnswerBody::Multipart(response_boundary, out),
    })
}
