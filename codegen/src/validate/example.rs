//! JSON values checked against a payload's fields as the generated struct reads them: the
//! `example` of every event and the fixed values of `server_emits`.

use serde_json::Value;

use crate::model::{Computed, Enum, Field, FieldType, Role};

/// Checks a payload value against the fields as the generated struct would, describing each
/// mismatch (`field `total`: expected a number, found "x"`).
pub(super) fn check_payload(
    value: &Value,
    fields: &[Field],
    roles: &[Role],
    enums: &[Enum],
    problems: &mut Vec<String>,
) {
    let Value::Object(object) = value else {
        problems.push(format!(
            "expected a mapping of fields, found {}",
            describe(value)
        ));
        return;
    };
    for key in object.keys() {
        if !fields.iter().any(|f| f.name == *key) {
            problems.push(format!("unknown field `{key}`"));
        }
    }
    for field in fields {
        match object.get(&field.name) {
            None | Some(Value::Null) if field.optional || field.computed.is_some() => {}
            None => problems.push(format!("missing field `{}`", field.name)),
            Some(v) => {
                if let Err(message) = check_value(v, &field.ty, roles, enums) {
                    problems.push(format!("field `{}`: {message}", field.name));
                } else if let Some(formula) = &field.computed
                    && let Some(expected) = evaluate(formula, object)
                    && v.as_f64().is_some_and(|got| (got - expected).abs() > 1e-9)
                {
                    problems.push(format!(
                        "field `{}` is computed as {expected}, but the example says {v}",
                        field.name
                    ));
                }
            }
        }
    }
}

/// A valid example as a client receives it: computed fields it leaves out are filled in, in field
/// order, as omnicast would compute them.
pub(super) fn with_computed(example: Value, fields: &[Field]) -> Value {
    let Value::Object(given) = example else {
        return example;
    };
    let mut out = serde_json::Map::new();
    for field in fields {
        match (given.get(&field.name), &field.computed) {
            (Some(v), _) if !v.is_null() => {
                out.insert(field.name.clone(), v.clone());
            }
            (_, Some(formula)) => {
                if let Some(value) = evaluate(formula, &given) {
                    let value = match field.ty {
                        FieldType::Integer => Value::from(value as i64),
                        _ => serde_json::Number::from_f64(value).map_or(Value::Null, Value::Number),
                    };
                    out.insert(field.name.clone(), value);
                }
            }
            (Some(v), None) => {
                out.insert(field.name.clone(), v.clone());
            }
            (None, None) => {}
        }
    }
    Value::Object(out)
}

fn evaluate(formula: &Computed, object: &serde_json::Map<String, Value>) -> Option<f64> {
    let get = |name: &str| object.get(name).and_then(Value::as_f64);
    Some(match formula {
        Computed::Difference {
            minuend,
            subtrahend,
        } => get(minuend)? - get(subtrahend)?,
        Computed::PercentChange { from, to } => {
            omnicast_runtime::percent_change(get(from)?, get(to)?)?
        }
    })
}

pub(super) fn check_value(
    value: &Value,
    ty: &FieldType,
    roles: &[Role],
    enums: &[Enum],
) -> Result<(), String> {
    let ok = match ty {
        FieldType::String => value.is_string(),
        FieldType::Number => value.is_number(),
        FieldType::Integer => value.is_i64(),
        FieldType::Boolean => value.is_boolean(),
        FieldType::Timestamp => value.is_u64(),
        FieldType::Role => match value.as_str() {
            Some(s) if roles.iter().any(|r| r.name == s) => true,
            Some(s) => return Err(format!("`{s}` is not a role")),
            None => false,
        },
        FieldType::Enum(i) => match value.as_str() {
            Some(s) if enums[*i].values.iter().any(|v| v == s) => true,
            Some(s) => {
                return Err(format!(
                    "`{s}` is not a value of `{}` ({})",
                    enums[*i].name,
                    enums[*i].values.join(", ")
                ));
            }
            None => false,
        },
        FieldType::List(item) => match value.as_array() {
            Some(items) => {
                for (i, v) in items.iter().enumerate() {
                    check_value(v, item, roles, enums).map_err(|m| format!("item {i}: {m}"))?;
                }
                true
            }
            None => false,
        },
    };
    if ok {
        Ok(())
    } else {
        Err(format!(
            "expected {}, found {}",
            ty.display(enums),
            describe(value)
        ))
    }
}

fn describe(value: &Value) -> String {
    match value {
        Value::Null => "nothing".into(),
        Value::String(s) => format!("the string {s:?}"),
        Value::Array(_) => "a list".into(),
        Value::Object(_) => "a mapping".into(),
        other => format!("`{other}`"),
    }
}
