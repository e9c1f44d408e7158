//! Listing endpoints as RabbitMQ answers them: sorted by `sort` (then vhost and name), and
//! paged only when `page` is given, filtered by `name` (a case-insensitive substring, or a
//! regex with `use_regex=true`) in that case too.
//!
//! Sort keys are computed once per item (never in the comparator), and items are serialised
//! straight from their structs, so listing 10,000 queues costs milliseconds.

use std::cmp::Ordering;

use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::{ApiError, ApiResult};

#[derive(Deserialize, Default, Debug)]
pub struct ListQuery {
    pub page: Option<String>,
    pub page_size: Option<String>,
    pub name: Option<String>,
    pub use_regex: Option<String>,
    pub sort: Option<String>,
    pub sort_reverse: Option<String>,
    pub columns: Option<String>,
}

const DEFAULT_PAGE_SIZE: usize = 100;
/// RabbitMQ's largest page.
const MAX_PAGE_SIZE: usize = 500;

/// A value items are ordered by. Absent values sort first, then numbers, then strings.
#[derive(Clone, Debug, PartialEq)]
pub enum SortKey {
    Missing,
    Num(f64),
    Str(String),
}

impl SortKey {
    fn cmp(&self, other: &SortKey) -> Ordering {
        use SortKey::*;
        match (self, other) {
            (Missing, Missing) => Ordering::Equal,
            (Missing, _) => Ordering::Less,
            (_, Missing) => Ordering::Greater,
            (Num(a), Num(b)) => a.total_cmp(b),
            (Num(_), Str(_)) => Ordering::Less,
            (Str(_), Num(_)) => Ordering::Greater,
            (Str(a), Str(b)) => a.cmp(b),
        }
    }

    pub fn from_json(v: Option<&Value>) -> SortKey {
        match v {
            None | Some(Value::Null) => SortKey::Missing,
            Some(Value::Number(n)) => SortKey::Num(n.as_f64().unwrap_or(0.0)),
            Some(Value::Bool(b)) => SortKey::Str(b.to_string()),
            Some(Value::String(s)) => SortKey::Str(s.clone()),
            Some(other) => SortKey::Str(other.to_string()),
        }
    }
}

pub fn num(n: impl Into<f64>) -> SortKey {
    SortKey::Num(n.into())
}

/// An item of a listing.
pub trait Listable: Serialize {
    fn name(&self) -> &str;
    fn vhost(&self) -> &str {
        ""
    }
    /// The value of a (dotted) field, for the fields worth a fast path; None falls back to
    /// looking the field up in the item's JSON.
    fn sort_key(&self, _field: &str) -> Option<SortKey> {
        None
    }
}

fn lookup<'a>(v: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(v, |v, part| v.get(part))
}

fn key_of<T: Listable>(item: &T, field: &str) -> SortKey {
    match field {
        "name" => SortKey::Str(item.name().to_string()),
        "vhost" => SortKey::Str(item.vhost().to_string()),
        _ => item.sort_key(field).unwrap_or_else(|| {
            let v = serde_json::to_value(item).unwrap_or(Value::Null);
            SortKey::from_json(lookup(&v, field))
        }),
    }
}

fn truthy(v: &Option<String>) -> bool {
    v.as_deref().is_some_and(|s| s.eq_ignore_ascii_case("true"))
}

fn positive(v: &Option<String>, what: &str, default: usize) -> ApiResult<usize> {
    match v.as_deref().map(str::trim) {
        None | Some("") => Ok(default),
        Some(s) => s
            .parse::<usize>()
            .ok()
            .filter(|n| *n >= 1)
            .ok_or_else(|| ApiError::bad_request(format!("{what} must be a positive integer"))),
    }
}

/// Items sorted and, when asked, filtered and paged, as a JSON response.
pub fn respond<T: Listable>(owned: Vec<T>, q: &ListQuery) -> ApiResult<Response> {
    let paged = q.page.is_some();
    let total = owned.len();
    // Filtering and sorting move references: a queue's item is hundreds of bytes, and sorting
    // 10,000 of them by value copied megabytes per request.
    let mut items: Vec<&T> = owned.iter().collect();
    if paged {
        if let Some(filter) = q.name.as_deref().filter(|f| !f.is_empty()) {
            if truthy(&q.use_regex) {
                // Bytes and ASCII case folding: the Unicode tables are not compiled in, and
                // names are bytes to AMQP anyway.
                let re = regex::bytes::RegexBuilder::new(filter)
                    .unicode(false)
                    .case_insensitive(true)
                    .build()
                    .map_err(|e| ApiError::bad_request(format!("invalid regex: {e}")))?;
                items.retain(|i| re.is_match(i.name().as_bytes()));
            } else {
                let needle = filter.to_lowercase();
                items.retain(|i| i.name().to_lowercase().contains(&needle));
            }
        }
    }
    sort(&mut items, q.sort.as_deref(), truthy(&q.sort_reverse));
    if !paged {
        return render(&items, q);
    }
    let page = positive(&q.page, "page", 1)?;
    let page_size = positive(&q.page_size, "page_size", DEFAULT_PAGE_SIZE)?;
    if page_size > MAX_PAGE_SIZE {
        return Err(ApiError::bad_request(format!(
            "page_size cannot be greater than {MAX_PAGE_SIZE}"
        )));
    }
    let filtered = items.len();
    let page_count = filtered.div_ceil(page_size);
    if page > page_count.max(1) {
        return Err(ApiError::bad_request("page out of range"));
    }
    let start = (page - 1) * page_size;
    let slice = &items[start.min(filtered)..(start + page_size).min(filtered)];
    let page_items = columns(slice, q)?;
    let body = serde_json::json!({
        "filtered_count": filtered,
        "item_count": slice.len(),
        "items": page_items,
        "page": page,
        "page_count": page_count,
        "page_size": page_size,
        "total_count": total,
    });
    Ok(json_response(body.to_string().into_bytes()))
}

/// RabbitMQ's order: the `sort` field if given, then vhost, then name.
fn sort<T: Listable>(items: &mut Vec<&T>, field: Option<&str>, reverse: bool) {
    let field = field.filter(|f| !f.is_empty());
    match field {
        None | Some("vhost") => items.sort_by(|a, b| {
            a.vhost()
                .cmp(b.vhost())
                .then_with(|| a.name().cmp(b.name()))
        }),
        Some("name") => items.sort_by(|a, b| {
            a.name()
                .cmp(b.name())
                .then_with(|| a.vhost().cmp(b.vhost()))
        }),
        Some(field) => {
            let mut keyed: Vec<(SortKey, &T)> =
                items.drain(..).map(|i| (key_of(i, field), i)).collect();
            keyed.sort_by(|(ka, a), (kb, b)| {
                ka.cmp(kb)
                    .then_with(|| a.vhost().cmp(b.vhost()))
                    .then_with(|| a.name().cmp(b.name()))
            });
            items.extend(keyed.into_iter().map(|(_, i)| i));
        }
    }
    if reverse {
        items.reverse();
    }
}

/// `columns=name,message_stats.publish`: only those (dotted) fields of each item.
fn columns<T: Listable>(items: &[&T], q: &ListQuery) -> ApiResult<Value> {
    let Some(cols) = q.columns.as_deref().filter(|c| !c.is_empty()) else {
        return serde_json::to_value(items).map_err(|e| ApiError::Internal(e.to_string()));
    };
    let cols: Vec<&str> = cols.split(',').map(str::trim).collect();
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        let full = serde_json::to_value(item).map_err(|e| ApiError::Internal(e.to_string()))?;
        let mut reduced = Map::new();
        for col in &cols {
            if let Some(v) = lookup(&full, col) {
                insert_path(&mut reduced, col, v.clone());
            }
        }
        out.push(Value::Object(reduced));
    }
    Ok(Value::Array(out))
}

fn insert_path(map: &mut Map<String, Value>, path: &str, v: Value) {
    match path.split_once('.') {
        None => {
            map.insert(path.to_string(), v);
        }
        Some((head, rest)) => {
            let entry = map
                .entry(head.to_string())
                .or_insert_with(|| Value::Object(Map::new()));
            if let Value::Object(inner) = entry {
                insert_path(inner, rest, v);
            }
        }
    }
}

fn render<T: Listable>(items: &[&T], q: &ListQuery) -> ApiResult<Response> {
    let bytes = if q.columns.as_deref().is_some_and(|c| !c.is_empty()) {
        columns(items, q)?.to_string().into_bytes()
    } else {
        // Sized from the first item: 10,000 queues are 7 MB of JSON, and growing the buffer by
        // doubling would copy it over and over.
        let first = items
            .first()
            .map_or(0, |i| serde_json::to_vec(i).map_or(0, |v| v.len()));
        let mut bytes = Vec::with_capacity(2 + (first + 1) * items.len() * 9 / 8);
        serde_json::to_writer(&mut bytes, items).map_err(|e| ApiError::Internal(e.to_string()))?;
        bytes
    };
    Ok(json_response(bytes))
}

pub fn json_response(bytes: Vec<u8>) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], bytes).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Serialize)]
    struct Item {
        name: String,
        vhost: String,
        n: u32,
    }

    impl Listable for Item {
        fn name(&self) -> &str {
            &self.name
        }
        fn vhost(&self) -> &str {
            &self.vhost
        }
    }

    fn items() -> Vec<Item> {
        (0..25)
            .map(|i| Item {
                name: format!("q{i:02}"),
                vhost: if i % 2 == 0 { "/" } else { "b" }.into(),
                n: 100 - i,
            })
            .collect()
    }

    fn body(r: Response) -> Value {
        let bytes = futures_body(r);
        serde_json::from_slice(&bytes).unwrap()
    }

    fn futures_body(r: Response) -> Vec<u8> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(async {
            axum::body::to_bytes(r.into_body(), usize::MAX)
                .await
                .unwrap()
                .to_vec()
        })
    }

    #[test]
    fn pages_filter_and_sort() {
        let q = ListQuery {
            page: Some("2".into()),
            page_size: Some("5".into()),
            name: Some("Q1".into()),
            sort: Some("n".into()),
            ..Default::default()
        };
        let v = body(respond(items(), &q).unwrap());
        assert_eq!(v["total_count"], 25);
        assert_eq!(v["filtered_count"], 10);
        assert_eq!(v["page_count"], 2);
        assert_eq!(v["item_count"], 5);
        // sorted by n ascending: q19 (81) ... q10 (90); page 2 is q14..q10
        assert_eq!(v["items"][0]["name"], "q14");

        let unpaged = body(respond(items(), &ListQuery::default()).unwrap());
        assert_eq!(unpaged.as_array().unwrap().len(), 25);
        assert_eq!(unpaged[0]["vhost"], "/");

        let bad = ListQuery {
            page: Some("9".into()),
            ..Default::default()
        };
        assert!(respond(items(), &bad).is_err());
        let regex = ListQuery {
            page: Some("1".into()),
            name: Some("^q0[0-3]$".into()),
            use_regex: Some("true".into()),
            columns: Some("name".into()),
            ..Default::default()
        };
        let v = body(respond(items(), &regex).unwrap());
        assert_eq!(v["filtered_count"], 4);
        assert_eq!(v["items"][0], serde_json::json!({"name": "q00"}));
    }
}
