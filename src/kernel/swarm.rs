//! Swarms (REF §19.3): one transaction creates a completed root card that serves as the
//! blackboard, parallel worker cards under it, a verifier waiting on every worker and a
//! synthesizer waiting on the verifier. The topology is posted on the root as a
//! `[swarm:blackboard]` comment; an idempotency key on the root returns the existing swarm.

use super::store::Tx;
use serde::Serialize;
use serde_json::{Value, json};

use super::board::{Board, add_event, load_task};
use super::comments::{add_comment_tx, list_comments_tx};
use super::error::{KernelError, Result};
use super::runs::synth_run;
use super::tasks::{NewTask, PreparedTask, insert_task_tx};
use super::types::RunOutcome;
use super::validate as v;
use crate::{args, obj};

/// Prefix of blackboard comments on the root.
pub const BLACKBOARD_PREFIX: &str = "[swarm:blackboard] ";

/// One parallel worker of a swarm.
#[derive(Debug, Clone)]
pub struct SwarmWorker {
    /// Profile.
    pub assignee: String,
    /// Card title.
    pub title: String,
    /// Extra skills.
    pub skills: Vec<String>,
}

/// What to build.
#[derive(Debug, Clone, Default)]
pub struct SwarmSpec {
    pub goal: String,
    pub workers: Vec<SwarmWorker>,
    pub verifier: String,
    pub synthesizer: String,
    pub tenant: Option<String>,
    pub priority: i64,
    pub created_by: String,
    pub idempotency_key: Option<String>,
}

/// The ids of a swarm.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Swarm {
    pub root_id: String,
    pub worker_ids: Vec<String>,
    pub verifier_id: String,
    pub synthesizer_id: String,
    /// True when the idempotency key matched an existing swarm.
    #[serde(skip)]
    pub existing: bool,
}

fn topology_from_comments(c: &Tx, root: &str) -> Result<Option<Swarm>> {
    for cm in list_comments_tx(c, root)?.into_iter().rev() {
        let Some(rest) = cm.body.strip_prefix(BLACKBOARD_PREFIX) else {
            continue;
        };
        let Ok(v) = serde_json::from_str::<Value>(rest) else {
            continue;
        };
        if v.get("key").and_then(Value::as_str) != Some("topology") {
            continue;
        }
        let t = &v["value"];
        let ids = |k: &str| t.get(k).and_then(Value::as_str).map(str::to_string);
        if let (Some(verifier_id), Some(synthesizer_id)) =
            (ids("verifier_id"), ids("synthesizer_id"))
        {
            let worker_ids = t
                .get("worker_ids")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|x| x.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default();
            return Ok(Some(Swarm {
                root_id: root.to_string(),
                worker_ids,
                verifier_id,
                synthesizer_id,
                existing: true,
            }));
        }
    }
    Ok(None)
}

/// Check a swarm's shape (a goal, 1–100 workers, a profile on every card). Returns the goal.
fn check_spec(spec: &SwarmSpec) -> Result<String> {
    let goal = v::required_text("goal", &spec.goal, v::BODY_MAX_BYTES)?;
    if spec.workers.is_empty() {
        return Err(KernelError::invalid(
            "workers",
            "a swarm needs at least one --worker PROFILE:TITLE",
        ));
    }
    if spec.workers.len() > 100 {
        return Err(KernelError::invalid(
            "workers",
            "at most 100 workers per swarm",
        ));
    }
    for (field, name) in [
        ("verifier", &spec.verifier),
        ("synthesizer", &spec.synthesizer),
    ]
    .into_iter()
    .chain(spec.workers.iter().map(|w| ("workers", &w.assignee)))
    {
        if name.trim().is_empty() || name.trim().eq_ignore_ascii_case("none") {
            return Err(KernelError::invalid(
                field,
                "every swarm card needs a profile to work on it",
            ));
        }
    }
    Ok(goal)
}

/// The root is the blackboard: completed at once, with a synthesized run carrying the
/// swarm's metadata.
fn complete_root(
    c: &Tx,
    root_id: &str,
    goal: &str,
    goal_title: &str,
    workers: usize,
    now: i64,
) -> Result<()> {
    let summary = format!("swarm root for: {goal_title}");
    let meta = obj! {"kind" => "kanban_swarm_v1", "goal" => goal, "worker_count" => workers};
    c.exec(
        "UPDATE tasks SET status='done', completed_at=?1, result=?2 WHERE id=?3",
        args![now, summary, root_id],
    )?;
    let t = load_task(c, root_id)?;
    let run_id = synth_run(
        c,
        &t,
        RunOutcome::Completed,
        Some(&summary),
        None,
        Some(&meta),
        now,
    )?;
    add_event(
        c,
        root_id,
        Some(run_id),
        "completed",
        obj! {"result_len" => 0, "summary" => summary},
        now,
    )?;
    Ok(())
}

/// A swarm's cards, validated before its transaction opens. The workers' bodies and every
/// card's parents are filled in inside it, once the root's id is known.
struct SwarmCards {
    root: PreparedTask,
    workers: Vec<PreparedTask>,
    verifier: PreparedTask,
    synthesizer: PreparedTask,
}

/// Insert the workers under the root, each with its part of the goal and the blackboard
/// protocol as its body; their ids, in order.
fn insert_workers(
    c: &Tx,
    cards: &[PreparedTask],
    spec: &SwarmSpec,
    goal: &str,
    root_id: &str,
    now: i64,
) -> Result<Vec<String>> {
    let mut worker_ids = Vec::new();
    for (mut p, w) in cards.iter().cloned().zip(&spec.workers) {
        p.parents = vec![root_id.to_string()];
        p.body = Some(format!(
            "{goal}\n\nYour part: {}\n\n## Swarm protocol\nYou are one of {} parallel \
            workers. Card {root_id} is the shared blackboard: read its comments before you \
            start, and post each finding there as a comment `{}{{\"key\": \"<short key>\", \
            \"value\": <JSON>}}`. Finish your own card with kanban_complete; a verifier \
            checks all workers' results next.",
            w.title,
            spec.workers.len(),
            BLACKBOARD_PREFIX
        ));
        worker_ids.push(insert_task_tx(c, &p, now)?.task.id);
    }
    Ok(worker_ids)
}

/// Insert a card waiting on `parents`; its id.
fn insert_after(c: &Tx, card: &PreparedTask, parents: Vec<String>, now: i64) -> Result<String> {
    let mut p = card.clone();
    p.parents = parents;
    Ok(insert_task_tx(c, &p, now)?.task.id)
}

/// Post the topology on the root as a blackboard comment (how a reused swarm is found again).
fn post_topology(c: &Tx, swarm: &Swarm, goal: &str, author: &str, now: i64) -> Result<()> {
    let topo = json!({"key": "topology", "value": {"goal": goal, "worker_ids": swarm.worker_ids,
        "verifier_id": swarm.verifier_id, "synthesizer_id": swarm.synthesizer_id}});
    add_comment_tx(
        c,
        &swarm.root_id,
        author,
        &format!("{BLACKBOARD_PREFIX}{topo}"),
        now,
    )?;
    Ok(())
}

impl Board {
    /// Validate a swarm's cards: root, workers, verifier, synthesizer.
    fn prepare_swarm_cards(
        &self,
        spec: &SwarmSpec,
        goal: &str,
        goal_title: &str,
    ) -> Result<SwarmCards> {
        let card = |title: String, body: String, assignee: &str, skills: Vec<String>| NewTask {
            title,
            body: Some(body),
            assignee: Some(assignee.to_string()),
            created_by: Some(spec.created_by.clone()),
            tenant: spec.tenant.clone(),
            priority: spec.priority,
            skills,
            ..Default::default()
        };
        let root = self.prepare_task(NewTask {
            idempotency_key: spec.idempotency_key.clone(),
            ..card(
                format!("Swarm: {goal_title}"),
                format!(
                    "{goal}\n\nThis card is the swarm's blackboard: workers post findings as \
                    comments prefixed `{}` with a JSON object {{\"key\": …, \"value\": …}}.",
                    BLACKBOARD_PREFIX.trim_end()
                ),
                &spec.created_by,
                Vec::new(),
            )
        })?;
        let mut workers = Vec::new();
        for w in &spec.workers {
            workers.push(self.prepare_task(card(
                w.title.clone(),
                String::new(),
                &w.assignee,
                w.skills.clone(),
            ))?);
        }
        let verifier = self.prepare_task(card(
            format!("Verify: {goal_title}"),
            format!(
                "Check the workers' findings for the swarm goal below against each \
                other and the sources; record what holds and what does not.\n\n{goal}"
            ),
            &spec.verifier,
            vec!["requesting-code-review".into()],
        ))?;
        let synthesizer = self.prepare_task(card(
            format!("Synthesize: {goal_title}"),
            format!(
                "Write the final answer to the swarm goal below from the verified \
                findings.\n\n{goal}"
            ),
            &spec.synthesizer,
            vec!["humanizer".into()],
        ))?;
        Ok(SwarmCards {
            root,
            workers,
            verifier,
            synthesizer,
        })
    }

    /// Build a swarm in one transaction (see module docs).
    pub fn create_swarm(&self, spec: &SwarmSpec) -> Result<Swarm> {
        let goal = check_spec(spec)?;
        let goal_title = v::first_line(&goal, 200);
        let cards = self.prepare_swarm_cards(spec, &goal, &goal_title)?;
        let now = self.now();
        self.write(|c| {
            let root = insert_task_tx(c, &cards.root, now)?;
            if root.existing {
                return topology_from_comments(c, &root.task.id)?.ok_or_else(|| {
                    KernelError::refused(
                        &root.task.id,
                        "reuse swarm",
                        "the idempotency key matches a task that is not a swarm root",
                    )
                });
            }
            let root_id = root.task.id.clone();
            complete_root(c, &root_id, &goal, &goal_title, spec.workers.len(), now)?;
            let worker_ids = insert_workers(c, &cards.workers, spec, &goal, &root_id, now)?;
            let verifier_id = insert_after(c, &cards.verifier, worker_ids.clone(), now)?;
            let synthesizer_id =
                insert_after(c, &cards.synthesizer, vec![verifier_id.clone()], now)?;
            let swarm = Swarm {
                root_id,
                worker_ids,
                verifier_id,
                synthesizer_id,
                existing: false,
            };
            post_topology(c, &swarm, &goal, &spec.created_by, now)?;
            Ok(swarm)
        })
    }
}
