//! The JSON shapes the API answers with (REF §17.2 field names): a task as an object, its
//! `age`, the `warnings` summary of its diagnostics, and the board's cards and columns (full and
//! `?compact=1` forms). No I/O and no rules: pure conversions from kernel values.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::{Map, Value};

use crate::kernel::{Diagnostic, Severity, Task};

pub(super) fn obj(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

pub(super) fn preview(s: &str, max: usize) -> String {
    let n = s.chars().count();
    if n <= max {
        s.to_string()
    } else {
        let mut p: String = s.chars().take(max.saturating_sub(1)).collect();
        p.push('…');
        p
    }
}

/// `{count, kinds{kind: n}, latest_at, highest_severity}` of a card's diagnostics.
#[derive(Serialize)]
pub(super) struct Warnings {
    count: usize,
    kinds: BTreeMap<&'static str, i64>,
    latest_at: Option<i64>,
    highest_severity: Option<Severity>,
}

pub(super) fn warnings(d: &[Diagnostic]) -> Warnings {
    let mut kinds: BTreeMap<&'static str, i64> = BTreeMap::new();
    for x in d {
        *kinds.entry(x.kind).or_insert(0) += 1;
    }
    Warnings {
        count: d.len(),
        kinds,
        latest_at: d.iter().filter_map(|x| x.last_seen_at).max(),
        highest_severity: d.iter().map(|x| x.severity).max(),
    }
}

#[derive(Serialize)]
pub(super) struct Age {
    created_age_seconds: i64,
    started_age_seconds: Option<i64>,
    time_to_complete_seconds: Option<i64>,
}

pub(super) fn age(t: &Task, now: i64) -> Age {
    Age {
        created_age_seconds: (now - t.created_at).max(0),
        started_age_seconds: t.started_at.map(|s| (now - s).max(0)),
        time_to_complete_seconds: match (t.started_at, t.completed_at) {
            (Some(s), Some(c)) => Some((c - s).max(0)),
            _ => None,
        },
    }
}

pub(super) fn task_json(t: &Task) -> Map<String, Value> {
    obj(serde_json::to_value(t).unwrap_or(Value::Null))
}
