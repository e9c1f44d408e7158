//! AMQP values as JSON and back: field tables (arguments, headers) and message properties.

use serde_json::{Map, Number, Value};
use warren_protocol::{BasicProperties, Bytes, FieldTable, FieldValue, ShortStr, MAX_NESTING};

use crate::error::{ApiError, ApiResult};

pub fn short_str(s: &ShortStr) -> String {
    String::from_utf8_lossy(s.as_bytes()).into_owned()
}

pub fn field_value_to_json(v: &FieldValue) -> Value {
    match v {
        FieldValue::Bool(b) => Value::Bool(*b),
        FieldValue::F32(f) => Number::from_f64(*f as f64).map_or(Value::Null, Value::Number),
        FieldValue::F64(f) => Number::from_f64(*f).map_or(Value::Null, Value::Number),
        FieldValue::Decimal(scale, unscaled) => {
            let value = *unscaled as f64 / 10f64.powi(*scale as i32);
            Number::from_f64(value).map_or(Value::Null, Value::Number)
        }
        FieldValue::LongStr(b) | FieldValue::ByteArray(b) => {
            Value::String(String::from_utf8_lossy(b).into_owned())
        }
        FieldValue::Array(items) => Value::Array(items.iter().map(field_value_to_json).collect()),
        FieldValue::Table(t) => table_to_json(t),
        FieldValue::Void => Value::Null,
        // Not decoded (a hostile depth): shown as a marker rather than walked.
        FieldValue::Nested(_) => {
            Value::String(format!("(nested deeper than {MAX_NESTING} levels)"))
        }
        other => other
            .as_i64()
            .map_or(Value::Null, |i| Value::Number(i.into())),
    }
}

pub fn table_to_json(t: &FieldTable) -> Value {
    let mut map = Map::new();
    for (k, v) in t.iter() {
        map.insert(short_str(k), field_value_to_json(v));
    }
    Value::Object(map)
}

pub fn json_to_field_value(v: &Value) -> FieldValue {
    match v {
        Value::Null => FieldValue::Void,
        Value::Bool(b) => FieldValue::Bool(*b),
        Value::Number(n) => match (n.as_i64(), n.as_f64()) {
            // RabbitMQ's JSON decoding makes integers `long`.
            (Some(i), _) => FieldValue::I64(i),
            (None, Some(f)) => FieldValue::F64(f),
            (None, None) => FieldValue::Void,
        },
        Value::String(s) => FieldValue::LongStr(Bytes::copy_from_slice(s.as_bytes())),
        Value::Array(items) => FieldValue::Array(items.iter().map(json_to_field_value).collect()),
        Value::Object(_) => FieldValue::Table(json_to_table(v).unwrap_or_default()),
    }
}

/// An `arguments` or `headers` object; null or absent is the empty table.
pub fn json_to_table(v: &Value) -> ApiResult<FieldTable> {
    match v {
        Value::Null => Ok(FieldTable::new()),
        Value::Object(map) => {
            let mut t = FieldTable::new();
            for (k, v) in map {
                if k.len() > ShortStr::MAX_LEN {
                    return Err(ApiError::bad_request(format!("field name too long: {k}")));
                }
                t.insert(k.as_str(), json_to_field_value(v));
            }
            Ok(t)
        }
        // The web UI of old sent empty arguments as an empty list.
        Value::Array(a) if a.is_empty() => Ok(FieldTable::new()),
        _ => Err(ApiError::bad_request("arguments must be an object")),
    }
}

pub fn properties_to_json(p: &BasicProperties) -> Value {
    let mut m = Map::new();
    let mut put_str = |k: &str, v: &Option<ShortStr>| {
        if let Some(v) = v {
            m.insert(k.to_string(), Value::String(short_str(v)));
        }
    };
    put_str("content_type", &p.content_type);
    put_str("content_encoding", &p.content_encoding);
    put_str("correlation_id", &p.correlation_id);
    put_str("reply_to", &p.reply_to);
    put_str("expiration", &p.expiration);
    put_str("message_id", &p.message_id);
    put_str("type", &p.kind);
    put_str("user_id", &p.user_id);
    put_str("app_id", &p.app_id);
    put_str("cluster_id", &p.cluster_id);
    if let Some(h) = &p.headers {
        m.insert("headers".into(), table_to_json(h));
    }
    if let Some(d) = p.delivery_mode {
        m.insert("delivery_mode".into(), d.into());
    }
    if let Some(pr) = p.priority {
        m.insert("priority".into(), pr.into());
    }
    if let Some(t) = p.timestamp {
        m.insert("timestamp".into(), t.into());
    }
    Value::Object(m)
}

/// An integer given as a number or as a string of digits (the web UI sends strings).
fn json_int(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

pub fn json_to_properties(v: &Value) -> ApiResult<BasicProperties> {
    let mut p = BasicProperties::default();
    let map = match v {
        Value::Null => return Ok(p),
        Value::Object(map) => map,
        Value::Array(a) if a.is_empty() => return Ok(p),
        _ => return Err(ApiError::bad_request("properties must be an object")),
    };
    for (k, v) in map {
        let text = || -> ApiResult<ShortStr> {
            match v {
                Value::String(s) if s.len() <= ShortStr::MAX_LEN => Ok(ShortStr::from(s.as_str())),
                Value::Number(n) => Ok(ShortStr::from(n.to_string())),
                _ => Err(ApiError::bad_request(format!("invalid property {k}"))),
            }
        };
        let int = |max: i64| -> ApiResult<i64> {
            json_int(v)
                .filter(|i| (0..=max).contains(i))
                .ok_or_else(|| ApiError::bad_request(format!("invalid property {k}")))
        };
        match k.as_str() {
            "content_type" => p.content_type = Some(text()?),
            "content_encoding" => p.content_encoding = Some(text()?),
            "correlation_id" => p.correlation_id = Some(text()?),
            "reply_to" => p.reply_to = Some(text()?),
            "expiration" => p.expiration = Some(text()?),
            "message_id" => p.message_id = Some(text()?),
            "type" => p.kind = Some(text()?),
            "user_id" => p.user_id = Some(text()?),
            "app_id" => p.app_id = Some(text()?),
            "cluster_id" => p.cluster_id = Some(text()?),
            "delivery_mode" => p.delivery_mode = Some(int(255)? as u8),
            "priority" => p.priority = Some(int(255)? as u8),
            "timestamp" => p.timestamp = Some(int(i64::MAX)? as u64),
            "headers" => p.headers = Some(json_to_table(v)?),
            other => return Err(ApiError::bad_request(format!("unknown property {other}"))),
        }
    }
    Ok(p)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn tables_round_trip_through_json() {
        let j = json!({"x-message-ttl": 60000, "x-dead-letter-exchange": "dlx", "flag": true,
                       "nested": {"a": [1, "b"]}, "ratio": 0.5});
        let t = json_to_table(&j).unwrap();
        assert_eq!(t.get("x-message-ttl"), Some(&FieldValue::I64(60000)));
        assert_eq!(table_to_json(&t), j);
    }

    #[test]
    fn properties_round_trip_through_json() {
        let j = json!({"content_type": "text/plain", "delivery_mode": 2, "priority": 1,
                       "headers": {"k": "v"}, "timestamp": 12, "type": "t"});
        let p = json_to_properties(&j).unwrap();
        assert_eq!(p.delivery_mode, Some(2));
        assert_eq!(properties_to_json(&p), j);
        assert!(json_to_properties(&json!({"delivery_mode": "x"})).is_err());
        assert_eq!(
            json_to_properties(&json!({"delivery_mode": "2"}))
                .unwrap()
                .delivery_mode,
            Some(2)
        );
    }
}
