//! Tool input schemas every LLM API accepts. schemars writes JSON Schema 2020-12 (`$schema`,
//! `$defs`/`$ref`, `oneOf` of `const`s, `["string","null"]` type arrays, untyped `Value`s);
//! Gemini-style function declarations and many OpenAI-compatible servers take only a subset.
//! [`portable`] rewrites a schema into that subset — `type` (one per property), `format`,
//! `description`, `enum`, `properties`, `required`, `items`, `minItems`, `maxItems`,
//! `minimum`, `maximum` — with `$ref`s inlined, enums as `enum` (variant docs folded into the
//! description), optional fields nullable by their absence from `required`, and untyped values
//! as `object`. Only the advertised schema changes: the server still accepts the lenient
//! inputs its parameter types accept (null for optional fields, one string for a list, …).

use serde_json::{Map, Value, json};

/// The keywords a portable schema may use.
pub const ALLOWED_KEYWORDS: &[&str] = &[
    "type",
    "format",
    "description",
    "nullable",
    "enum",
    "properties",
    "required",
    "items",
    "minItems",
    "maxItems",
    "minimum",
    "maximum",
];

/// Formats Gemini understands; others are dropped.
const FORMATS: &[&str] = &["int32", "int64", "float", "double", "enum", "date-time"];

/// The portable form of a tool's input schema (a top-level `type: object`).
pub fn portable(schema: &Map<String, Value>) -> Map<String, Value> {
    let defs = schema
        .get("$defs")
        .or_else(|| schema.get("definitions"))
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let mut out = match node(&Value::Object(schema.clone()), &defs, 0) {
        Value::Object(m) => m,
        _ => Map::new(),
    };
    out.insert("type".into(), json!("object"));
    out.entry("properties").or_insert_with(|| json!({}));
    out
}

fn resolve<'a>(v: &'a Value, defs: &'a Map<String, Value>) -> &'a Value {
    let mut cur = v;
    for _ in 0..16 {
        let Some(r) = cur.get("$ref").and_then(Value::as_str) else {
            break;
        };
        let name = r.rsplit('/').next().unwrap_or(r);
        match defs.get(name) {
            Some(d) => cur = d,
            None => break,
        }
    }
    cur
}

fn type_of(v: &Value) -> Option<&str> {
    match v.get("type") {
        Some(Value::String(t)) => Some(t.as_str()),
        Some(Value::Array(ts)) => ts.iter().filter_map(Value::as_str).find(|t| *t != "null"),
        _ => None,
    }
}

fn node(v: &Value, defs: &Map<String, Value>, depth: usize) -> Value {
    node_described(v, defs, depth, None)
}

/// [`node`] with the description of an enclosing union (`Option<Enum>` is `anyOf [enum, null]`)
/// taking precedence.
fn node_described(
    v: &Value,
    defs: &Map<String, Value>,
    depth: usize,
    outer: Option<Value>,
) -> Value {
    if depth > 32 {
        return json!({"type": "object"});
    }
    let desc = outer.or_else(|| v.get("description").cloned());
    let target = resolve(v, defs);
    let desc = desc.or_else(|| target.get("description").cloned());
    if let Some(vs) = union_variants(target, defs) {
        if let Some(consts) = enum_consts(&vs) {
            return enum_node(consts, desc.as_ref(), target);
        }
        // A union of shapes (one string or a list; a boolean or its spelling): advertise the
        // richest one — array over boolean over anything else. The lenient parse stays.
        let pick = vs
            .iter()
            .find(|x| type_of(x) == Some("array"))
            .or_else(|| vs.iter().find(|x| type_of(x) == Some("boolean")))
            .or_else(|| vs.first())
            .copied();
        return match pick {
            Some(p) => node_described(p, defs, depth + 1, desc),
            None => json!({"type": "object"}),
        };
    }
    let mut out = shape_node(target, defs, depth);
    if let Some(d) = desc {
        out.insert("description".into(), d);
    }
    Value::Object(out)
}

/// The variants of a `oneOf`/`anyOf`, resolved, without the `null` one (`Option<T>`).
fn union_variants<'a>(target: &'a Value, defs: &'a Map<String, Value>) -> Option<Vec<&'a Value>> {
    ["oneOf", "anyOf"]
        .iter()
        .find_map(|k| target.get(*k).and_then(Value::as_array))
        .map(|vs| {
            vs.iter()
                .map(|x| resolve(x, defs))
                .filter(|x| type_of(x) != Some("null") || x.get("enum").is_some())
                .collect()
        })
}

/// When every variant is a `const` or an `enum`: the non-null values with each `const`'s
/// description (`None` for a union of shapes, or when no value is left).
fn enum_consts(vs: &[&Value]) -> Option<Vec<(Value, Option<String>)>> {
    vs.iter()
        .map(|x| {
            let d = x
                .get("description")
                .and_then(Value::as_str)
                .map(str::to_string);
            match (x.get("const"), x.get("enum").and_then(Value::as_array)) {
                (Some(c), _) => Some(vec![(c.clone(), d)]),
                (None, Some(e)) => Some(e.iter().map(|c| (c.clone(), None)).collect()),
                _ => None,
            }
        })
        .collect::<Option<Vec<_>>>()
        .map(|v| {
            v.into_iter()
                .flatten()
                .filter(|(c, _)| !c.is_null())
                .collect()
        })
        .filter(|c: &Vec<_>| !c.is_empty())
}

/// An enum: `enum` of the values; the variants' docs join the description.
fn enum_node(consts: Vec<(Value, Option<String>)>, desc: Option<&Value>, target: &Value) -> Value {
    let mut out = Map::new();
    let ty = if consts.iter().all(|(c, _)| c.is_string()) {
        "string"
    } else if consts.iter().all(|(c, _)| c.is_i64()) {
        "integer"
    } else {
        "number"
    };
    out.insert("type".into(), json!(ty));
    let docs: Vec<String> = consts
        .iter()
        .filter_map(|(c, d)| {
            let name = c.as_str().map_or_else(|| c.to_string(), str::to_string);
            let d = d.as_deref()?.trim_end_matches('.');
            (d != name).then(|| format!("{name} = {d}"))
        })
        .collect();
    let base = desc
        .and_then(Value::as_str)
        .or_else(|| target.get("description").and_then(Value::as_str));
    let text = match (base, docs.is_empty()) {
        (Some(b), false) => Some(format!(
            "{} ({}).",
            b.trim_end_matches('.'),
            docs.join("; ")
        )),
        (None, false) => Some(docs.join("; ")),
        (Some(b), true) => Some(b.to_string()),
        (None, true) => None,
    };
    if let Some(t) = text {
        out.insert("description".into(), json!(t));
    }
    out.insert(
        "enum".into(),
        Value::Array(consts.into_iter().map(|(c, _)| c).collect()),
    );
    Value::Object(out)
}

/// A schema that is not a union: an `enum` or a `const` as an enum, else its one `type` with
/// the kept `format` and bounds, and an object's properties or an array's items (the
/// description is the caller's).
fn shape_node(target: &Value, defs: &Map<String, Value>, depth: usize) -> Map<String, Value> {
    let mut out = Map::new();
    if let Some(e) = target.get("enum").and_then(Value::as_array) {
        let vals: Vec<Value> = e.iter().filter(|c| !c.is_null()).cloned().collect();
        out.insert(
            "type".into(),
            json!(if vals.iter().all(Value::is_string) {
                "string"
            } else {
                "number"
            }),
        );
        out.insert("enum".into(), Value::Array(vals));
        return out;
    }
    if let Some(c) = target.get("const") {
        out.insert(
            "type".into(),
            json!(if c.is_string() { "string" } else { "number" }),
        );
        out.insert("enum".into(), json!([c]));
        return out;
    }
    let ty = type_of(target).unwrap_or("object").to_string();
    out.insert("type".into(), json!(ty));
    if let Some(f) = target.get("format").and_then(Value::as_str)
        && FORMATS.contains(&f)
    {
        out.insert("format".into(), json!(f));
    }
    for k in ["minimum", "maximum", "minItems", "maxItems"] {
        if let Some(n) = target.get(k).filter(|n| n.is_number()) {
            out.insert(k.into(), n.clone());
        }
    }
    match ty.as_str() {
        "object" => {
            if let Some(props) = target.get("properties").and_then(Value::as_object) {
                let mapped: Map<String, Value> = props
                    .iter()
                    .map(|(k, p)| (k.clone(), node(p, defs, depth + 1)))
                    .collect();
                out.insert("properties".into(), Value::Object(mapped));
            }
            if let Some(req) = target.get("required").and_then(Value::as_array)
                && !req.is_empty()
            {
                out.insert("required".into(), Value::Array(req.clone()));
            }
        }
        "array" => {
            let items = target
                .get("items")
                .map(|i| node(i, defs, depth + 1))
                .unwrap_or_else(|| json!({"type": "string"}));
            out.insert("items".into(), items);
        }
        _ => {}
    }
    out
}

/// Problems of `schema` against the Gemini function-declaration subset and the OpenAI
/// function-parameters rules (for the test suite and `schemas/`); empty when portable.
pub fn violations(schema: &Value) -> Vec<String> {
    let mut out = Vec::new();
    if schema.get("type").and_then(Value::as_str) != Some("object") {
        out.push("top level: type must be \"object\"".into());
    }
    check(schema, "$", &mut out);
    out
}

fn check(v: &Value, at: &str, out: &mut Vec<String>) {
    let Some(m) = v.as_object() else {
        out.push(format!("{at}: a schema must be an object, got {v}"));
        return;
    };
    for (k, val) in m {
        if !ALLOWED_KEYWORDS.contains(&k.as_str()) {
            out.push(format!("{at}: keyword {k:?} is not in the portable subset"));
        }
        if k == "type" && !val.is_string() {
            out.push(format!("{at}: type must be one string, got {val}"));
        }
    }
    match m.get("type").and_then(Value::as_str) {
        None => out.push(format!("{at}: no type")),
        Some("object" | "array" | "string" | "integer" | "number" | "boolean") => {}
        Some(t) => out.push(format!("{at}: unknown type {t:?}")),
    }
    if let Some(e) = m.get("enum") {
        let ok = e
            .as_array()
            .is_some_and(|a| !a.is_empty() && a.iter().all(|x| x.is_string() || x.is_number()));
        if !ok {
            out.push(format!("{at}: enum must be a non-empty list of values"));
        }
    }
    if let Some(props) = m.get("properties") {
        match props.as_object() {
            Some(p) => {
                for (name, s) in p {
                    check(s, &format!("{at}.{name}"), out);
                }
                if let Some(req) = m.get("required").and_then(Value::as_array) {
                    for r in req {
                        if !r.as_str().is_some_and(|r| p.contains_key(r)) {
                            out.push(format!("{at}: required {r} is not a property"));
                        }
                    }
                }
            }
            None => out.push(format!("{at}: properties must be an object")),
        }
    }
    if m.get("type").and_then(Value::as_str) == Some("array") {
        match m.get("items") {
            Some(i) => check(i, &format!("{at}[]"), out),
            None => out.push(format!("{at}: an array needs items")),
        }
    }
}
