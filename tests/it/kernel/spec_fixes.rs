//! One test per deliberate fix of SPEC §3.3. Each asserts behaviour that Hermes 0.19.0 does
//! NOT have; the comment in each test says what 0.19.0 does instead (with REF sections), so the
//! test would fail against it.

use std::sync::{Arc, Barrier};

use crate::helpers::{TestBoard, assert_invariants};
use hermes_kanban::kernel::*;
use serde_json::{Map, json};

fn status(b: &Board, id: &str) -> Status {
    b.get_task(id).unwrap().status
}

fn complete(b: &Board, id: &str) -> Completed {
    b.complete_task(Completion {
        task_id: id.into(),
        summary: Some(format!("finished {id}")),
        ..Default::default()
    })
    .unwrap()
}

fn block(b: &Board, id: &str, kind: Option<BlockKind>) -> Blocked {
    b.block_task(BlockRequest {
        task_id: id.into(),
        reason: Some("stuck".into()),
        kind,
        ..Default::default()
    })
    .unwrap()
}

// ---------------------------------------------------------------------------------------------
// Fix 1: a parent is satisfied by `done` OR `archived` everywhere.
// ---------------------------------------------------------------------------------------------

#[test]
fn fix1_archived_parent_satisfies_children_everywhere() {
    // Hermes 0.19.0 (REF §5.1 step 5, §5.3): `create_task` and `unblock_task` count only `done`
    // parents, so a child of an archived parent is created in `todo` and an unblock routes it
    // to `todo` (only the next `recompute_ready` promotes it). Claim, promote and recompute do
    // accept `archived` there; they are pinned here so the rule holds "everywhere".
    let tb = TestBoard::new();
    let b = &tb.board;
    let archived = tb.task("archived parent");
    b.archive_task(&archived).unwrap();
    let done = tb.task("done parent");
    complete(b, &done);
    let pending = tb.task("pending parent");

    // create
    let child = tb.child("child of archived", &[&archived]);
    assert_eq!(status(b, &child), Status::Ready, "Hermes 0.19.0: todo");
    let created = &b.list_events(&child, None).unwrap()[0];
    assert_eq!(created.kind, "created");
    assert_eq!(created.payload.as_ref().unwrap()["status"], json!("ready"));
    let mixed = tb.child("done + archived", &[&done, &archived]);
    assert_eq!(status(b, &mixed), Status::Ready);
    let control = tb.child("archived + pending", &[&archived, &pending]);
    assert_eq!(
        status(b, &control),
        Status::Todo,
        "an unfinished parent still holds"
    );

    // claim
    let claim = b.claim_task(&child, None).unwrap();
    assert_eq!(status(b, &child), Status::Running);

    // unblock (from blocked and from scheduled)
    b.block_task(BlockRequest {
        task_id: child.clone(),
        reason: Some("need creds".into()),
        kind: Some(BlockKind::NeedsInput),
        expected_run_id: Some(claim.run_id),
        ..Default::default()
    })
    .unwrap();
    assert_eq!(
        b.unblock_task(&child, None, None).unwrap(),
        Status::Ready,
        "Hermes 0.19.0: todo"
    );
    assert_eq!(status(b, &child), Status::Ready);
    let unblocked = b.list_events(&child, Some(1)).unwrap().pop().unwrap();
    assert_eq!(unblocked.kind, "unblocked");
    assert_eq!(unblocked.payload, None, "no {{status: todo}} payload");
    b.schedule_task(&child, Some("after the freeze"), None, None)
        .unwrap();
    assert_eq!(b.unblock_task(&child, None, None).unwrap(), Status::Ready);

    // promote (no force needed)
    block(b, &mixed, Some(BlockKind::Dependency));
    assert_eq!(status(b, &mixed), Status::Todo);
    b.promote_task(&mixed, &PromoteOptions::default()).unwrap();
    assert_eq!(status(b, &mixed), Status::Ready);
    assert!(matches!(
        b.promote_task(&control, &PromoteOptions::default()),
        Err(KernelError::Refused {
            action: "promote",
            ..
        })
    ));

    // recompute
    block(b, &mixed, Some(BlockKind::Dependency));
    assert_eq!(b.recompute_ready().unwrap(), vec![mixed.clone()]);
    assert_eq!(status(b, &mixed), Status::Ready);
    assert_eq!(status(b, &control), Status::Todo);

    // archiving the last unfinished parent releases the child at once.
    assert_eq!(b.archive_task(&pending).unwrap(), vec![control.clone()]);
    assert_eq!(status(b, &control), Status::Ready);
}

// ---------------------------------------------------------------------------------------------
// Fix 2: breaker-blocked and created-blocked tasks stay blocked until a human unblocks them.
// ---------------------------------------------------------------------------------------------

/// Run everything that recomputes readiness, several times over a day, and check `ids` stay
/// `blocked`.
fn assert_stays_blocked(tb: &TestBoard, ids: &[String]) {
    let b = &tb.board;
    for round in 0..3 {
        let promoted = b.recompute_ready().unwrap();
        for id in ids {
            assert!(
                !promoted.contains(id),
                "round {round}: recompute promoted {id}"
            );
        }
        // Completing and archiving other tasks, and unlinking, recompute readiness too.
        let other = tb.task("other work");
        let waiting = tb.child("waits for other", &[&other]);
        complete(b, &other);
        assert_eq!(status(b, &waiting), Status::Ready, "recompute did run");
        b.archive_task(&waiting).unwrap();
        let listed = b.list_tasks(&ListFilter::default()).unwrap();
        let blocked = b
            .list_tasks(&ListFilter {
                status: Some(Status::Blocked),
                ..Default::default()
            })
            .unwrap();
        for id in ids {
            let t = listed.iter().find(|t| &t.id == id).expect("listed");
            assert_eq!(
                t.status,
                Status::Blocked,
                "round {round}: {id} was resurrected"
            );
            assert!(blocked.iter().any(|t| &t.id == id));
        }
        tb.advance(8 * 3600);
    }
    for id in ids {
        assert!(
            b.list_events(id, None)
                .unwrap()
                .iter()
                .all(|e| e.kind != "promoted"),
            "{id} got a `promoted` event"
        );
    }
}

#[test]
fn fix2_blocked_tasks_are_never_resurrected_by_recompute() {
    // Hermes 0.19.0 (REF §8.6 "Important interaction", §21.2, §21.7, §23.3): `recompute_ready`
    // re-promotes a breaker-blocked task to `ready` whenever consecutive_failures < (max_retries
    // ?? dispatcher failure_limit ?? 2) because the trip writes no `blocked` event; so a trip
    // by force (protocol-violation limit, counter 1) or by a lower ad-hoc limit (systemic
    // fast-trip failure_limit=1, counter 1 < 2) is undone on the next tick, and a task created
    // with initial_status=blocked is promoted by the next `hermes kanban list`.
    let tb = TestBoard::new();
    let b = &tb.board;

    // Forced trip with the counter (1) below the limit (3).
    let forced = tb.task("protocol violator");
    let c = b.claim_task(&forced, None).unwrap();
    let v = b
        .record_task_failure(&FailureReport {
            failure_limit: Some(3),
            force_trip: true,
            release_claim: true,
            end_run: true,
            ..FailureReport::new(&forced, RunOutcome::Crashed, "exited without completing")
        })
        .unwrap();
    assert!(v.tripped);
    assert_eq!((v.failures, v.effective_limit), (1, 3));
    assert_eq!(v.run_id, Some(c.run_id));

    // Per-call failure_limit = 1 with the counter (1) below the default limit (2).
    let fast = tb.task("systemic crash");
    let v = b
        .record_task_failure(&FailureReport {
            failure_limit: Some(1),
            ..FailureReport::new(&fast, RunOutcome::Crashed, "pid 7 exited with code 1")
        })
        .unwrap();
    assert!(v.tripped);
    assert_eq!((v.failures, v.effective_limit), (1, 1));
    const { assert!(1 < DEFAULT_FAILURE_LIMIT) };

    // The ordinary trip at the default limit.
    let plain = tb.task("crashes twice");
    for n in 1..=2 {
        let v = b
            .record_task_failure(&FailureReport::new(&plain, RunOutcome::Crashed, "boom"))
            .unwrap();
        assert_eq!(v.tripped, n == 2);
    }

    // Created blocked.
    let created = b
        .create_task(NewTask {
            title: "needs ops".into(),
            assignee: Some("worker".into()),
            initial_status: InitialStatus::Blocked,
            ..Default::default()
        })
        .unwrap()
        .task
        .id;

    let ids = vec![forced.clone(), fast.clone(), plain.clone(), created.clone()];
    for id in &ids {
        assert_eq!(status(b, id), Status::Blocked, "{id}");
    }
    assert_stays_blocked(&tb, &ids);

    // A human unblock releases them (and resets the breaker counter).
    for id in &ids {
        assert_eq!(
            b.unblock_task(id, Some("fixed"), Some("alice")).unwrap(),
            Status::Ready
        );
        let t = b.get_task(id).unwrap();
        assert_eq!(t.consecutive_failures, 0);
        assert_eq!(t.last_failure_error, None);
    }
    assert_invariants(b);
}

// ---------------------------------------------------------------------------------------------
// Fix 3: a dry-run dispatch writes nothing.
// ---------------------------------------------------------------------------------------------

/// `(len, mtime)` of a file, read with `stat` only (the file is never opened: SPEC §3.2).
fn stat(path: &std::path::Path) -> Option<(u64, std::time::SystemTime)> {
    std::fs::metadata(path)
        .ok()
        .map(|m| (m.len(), m.modified().unwrap()))
}

#[test]
fn fix3_dry_run_dispatch_writes_nothing() {
    // Hermes 0.19.0 (REF §9.1 "Dry-run caveat", §8.1 note, §21.7): `dispatch --dry-run` still
    // runs steps 1–6 of the tick — it reclaims expired claims (observed: "reclaimed": 1 and a
    // `reclaimed` event for a task claimed with --ttl 1), handles crashes and promotes `todo`
    // tasks — only the claim/spawn step is skipped.
    let tb = TestBoard::new();
    let b = &tb.board;
    std::fs::create_dir_all(tb.dir.path().join("hermes/profiles/worker")).unwrap();
    std::fs::write(
        tb.dir.path().join("hermes/profiles/worker/config.yaml"),
        "{}\n",
    )
    .unwrap();

    let expired = tb.task("claimed with a short ttl");
    let claim = b.claim_task(&expired, Some(1)).unwrap();
    let parked = tb.task("promotable");
    block(b, &parked, Some(BlockKind::Dependency));
    assert_eq!(status(b, &parked), Status::Todo);
    let ready = tb.task("ready");
    let waiting = tb.child("waits for ready", &[&ready]);
    let unassigned = b
        .create_task(NewTask {
            title: "nobody's".into(),
            ..Default::default()
        })
        .unwrap()
        .task
        .id;
    tb.advance(120);

    let paths = b.paths().clone();
    let wal = paths.db.with_file_name("kanban.db-wal");
    let rows_before = b.snapshot().unwrap();
    let files_before = (stat(&paths.db), stat(&wal));
    // The file check is SQLite's (the snapshot below checks the rows on either backend).
    let on_file = !b.is_postgres();
    assert!(
        files_before.0.is_some() || !on_file,
        "db file at {}",
        paths.db.display()
    );

    let opts = PlanOptions {
        max_spawn: Some(5),
        ..Default::default()
    };
    let plan = b.plan_dispatch(&opts).unwrap();
    assert_eq!(plan.expired_claims, vec![expired.clone()]);
    assert_eq!(plan.promotable, vec![parked.clone()]);
    assert_eq!(plan.running, 1);
    let spawn: Vec<&str> = plan
        .spawn
        .spawned
        .iter()
        .map(|s| s.task_id.as_str())
        .collect();
    assert!(spawn.contains(&ready.as_str()), "{plan:?}");
    assert!(
        spawn.contains(&parked.as_str()),
        "promotable tasks are planned too: {plan:?}"
    );
    assert!(!spawn.contains(&waiting.as_str()));
    assert_eq!(plan.spawn.skipped_unassigned, vec![unassigned.clone()]);

    // Nothing was written: not a row, not a byte of the DB or its WAL.
    assert_eq!(b.snapshot().unwrap(), rows_before, "dry run changed rows");
    if on_file {
        assert_eq!(
            (stat(&paths.db), stat(&wal)),
            files_before,
            "dry run touched the files"
        );
    }
    let t = b.get_task(&expired).unwrap();
    assert_eq!(
        t.status,
        Status::Running,
        "dry run reclaimed the expired claim"
    );
    assert_eq!(t.current_run_id, Some(claim.run_id));
    assert_eq!(status(b, &parked), Status::Todo, "dry run promoted");
    assert_eq!(status(b, &ready), Status::Ready, "dry run claimed");
    // Planning again gives the same answer.
    let again = b.plan_dispatch(&opts).unwrap();
    assert_eq!(
        serde_json::to_value(&again).unwrap(),
        serde_json::to_value(&plan).unwrap()
    );
    assert_eq!(b.snapshot().unwrap(), rows_before);
}

// ---------------------------------------------------------------------------------------------
// Fix 4: idempotent create is race-free.
// ---------------------------------------------------------------------------------------------

#[test]
fn fix4_idempotent_create_is_race_free_across_connections() {
    // Hermes 0.19.0 (REF §5.1 step 3): the idempotency lookup runs outside the insert
    // transaction, so concurrent creators with the same key can each miss the other's row and
    // insert duplicates ("races may still double-insert").
    const THREADS: usize = 8;
    let tb = TestBoard::new();
    for round in 0..5 {
        let key = format!("deploy-{round}");
        let barrier = Arc::new(Barrier::new(THREADS));
        let handles: Vec<_> = (0..THREADS)
            .map(|i| {
                let env = tb.env.clone();
                let barrier = barrier.clone();
                let key = key.clone();
                std::thread::spawn(move || {
                    let board = Board::open(&env, None).expect("open");
                    barrier.wait();
                    let c = board
                        .create_task(NewTask {
                            title: format!("deploy from thread {i}"),
                            assignee: Some("worker".into()),
                            idempotency_key: Some(key),
                            ..Default::default()
                        })
                        .expect("create");
                    (c.task.id, c.existing)
                })
            })
            .collect();
        let results: Vec<(String, bool)> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        let first = &results[0].0;
        assert!(
            results.iter().all(|(id, _)| id == first),
            "round {round}: different ids {results:?}"
        );
        assert_eq!(
            results.iter().filter(|(_, existing)| !existing).count(),
            1,
            "round {round}: exactly one thread created it: {results:?}"
        );
        let with_key: Vec<Task> = tb
            .board
            .list_tasks(&ListFilter {
                include_archived: true,
                ..Default::default()
            })
            .unwrap()
            .into_iter()
            .filter(|t| t.idempotency_key.as_deref() == Some(key.as_str()))
            .collect();
        assert_eq!(with_key.len(), 1, "round {round}: duplicates {with_key:#?}");
        assert_eq!(&with_key[0].id, first);
    }

    // Archived tasks do not count: the key creates a new task, which later creates return.
    let b = &tb.board;
    let make = |title: &str| {
        b.create_task(NewTask {
            title: title.into(),
            idempotency_key: Some("nightly".into()),
            ..Default::default()
        })
        .unwrap()
    };
    let old = make("nightly v1");
    assert!(!old.existing);
    assert_eq!(make("nightly again").task.id, old.task.id);
    b.archive_task(&old.task.id).unwrap();
    let new = make("nightly v2");
    assert!(!new.existing, "an archived match must not be returned");
    assert_ne!(new.task.id, old.task.id);
    assert_eq!(new.task.title, "nightly v2");
    let again = make("nightly v3");
    assert!(again.existing);
    assert_eq!(again.task.id, new.task.id);
}

// ---------------------------------------------------------------------------------------------
// Fix 5: the run/claim invariants hold after every step.
// ---------------------------------------------------------------------------------------------

/// A 64-bit LCG (Knuth's MMIX constants): deterministic, no dependency.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn coin(&mut self) -> bool {
        self.next() & 1 == 1
    }
    fn pick<'a>(&mut self, v: &'a [String]) -> Option<&'a String> {
        (!v.is_empty()).then(|| &v[self.below(v.len())])
    }
}

const OPS: [&str; 13] = [
    "create",
    "claim",
    "complete",
    "block",
    "unblock",
    "reclaim",
    "archive",
    "record_task_failure",
    "schedule",
    "promote",
    "heartbeat",
    "recompute",
    "assign",
];

/// Indexes into `OPS`; claims come up more often so that there is enough running work for the
/// operations on running tasks.
const WEIGHTED_OPS: [usize; 23] = [
    0, 0, 1, 1, 1, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 7, 7, 8, 9, 10, 11, 12,
];

#[test]
fn fix5_invariants_hold_after_every_step_of_a_long_scenario() {
    // Hermes 0.19.0 has no invariant checker, and its kernel can break the invariant: REF §6.1
    // step 2 and §6.3 describe "invariant leak" recoveries for `ready` rows that still carry a
    // `current_run_id`, and a breaker trip (REF §8.6) only clears the claim on the spawn path.
    // Here every one of 200 mixed operations — including refused ones, which must change
    // nothing — leaves the board consistent.
    let tb = TestBoard::new();
    let b = &tb.board;
    let mut rng = Lcg(0x5eed_cafe_f00d);
    let mut succeeded = [0usize; OPS.len()];
    let mut refused = 0usize;
    let kinds = [
        None,
        Some(BlockKind::NeedsInput),
        Some(BlockKind::Capability),
        Some(BlockKind::Transient),
        Some(BlockKind::Dependency),
    ];
    let outcomes = [
        RunOutcome::Crashed,
        RunOutcome::TimedOut,
        RunOutcome::SpawnFailed,
        RunOutcome::Stale,
    ];
    for _ in 0..3 {
        tb.task("seed");
    }

    for step in 0..200 {
        let all = b
            .list_tasks(&ListFilter {
                include_archived: true,
                sort: TaskSort::Created,
                ..Default::default()
            })
            .unwrap();
        let with = |statuses: &[Status]| -> Vec<String> {
            all.iter()
                .filter(|t| statuses.contains(&t.status))
                .map(|t| t.id.clone())
                .collect()
        };
        let ids: Vec<String> = all.iter().map(|t| t.id.clone()).collect();
        let op = WEIGHTED_OPS[rng.below(WEIGHTED_OPS.len())];
        // Usually pick a task the operation applies to; sometimes any task (mostly refusals).
        let any = rng.below(5) == 0;
        let mut target = |statuses: &[Status]| -> Option<String> {
            let pool = if any { ids.clone() } else { with(statuses) };
            rng.pick(&pool).cloned()
        };
        let before = b.snapshot().unwrap();
        let result: Result<(), KernelError> = match OPS[op] {
            "create" => {
                let live = with(&[
                    Status::Todo,
                    Status::Ready,
                    Status::Running,
                    Status::Done,
                    Status::Archived,
                    Status::Blocked,
                ]);
                let parents: Vec<String> = (0..rng.below(3))
                    .filter_map(|_| rng.pick(&live).cloned())
                    .collect();
                b.create_task(NewTask {
                    title: format!("task {step}"),
                    assignee: Some(["worker", "other"][rng.below(2)].into()),
                    parents,
                    triage: rng.below(10) == 0,
                    initial_status: if rng.below(10) == 0 {
                        InitialStatus::Blocked
                    } else {
                        InitialStatus::Normal
                    },
                    ..Default::default()
                })
                .map(drop)
            }
            "claim" => match target(&[Status::Ready]) {
                Some(id) => b.claim_task(&id, Some(1 + rng.below(300) as i64)).map(drop),
                None => continue,
            },
            "complete" => match target(&[Status::Running, Status::Ready, Status::Blocked]) {
                Some(id) => {
                    let cur = b.get_task(&id).unwrap().current_run_id;
                    b.complete_task(Completion {
                        task_id: id,
                        summary: rng.coin().then(|| format!("step {step}")),
                        expected_run_id: if rng.coin() { cur } else { None },
                        ..Default::default()
                    })
                    .map(drop)
                }
                None => continue,
            },
            "block" => match target(&[Status::Running, Status::Ready]) {
                Some(id) => b
                    .block_task(BlockRequest {
                        task_id: id,
                        reason: rng.coin().then(|| "stuck".to_string()),
                        kind: kinds[rng.below(kinds.len())],
                        ..Default::default()
                    })
                    .map(drop),
                None => continue,
            },
            "unblock" => match target(&[Status::Blocked, Status::Scheduled]) {
                Some(id) => b.unblock_task(&id, None, None).map(drop),
                None => continue,
            },
            "reclaim" => match target(&[Status::Running]) {
                Some(id) => b.reclaim_task(&id, None, Map::new()).map(drop),
                None => continue,
            },
            "archive" => match target(&[
                Status::Triage,
                Status::Todo,
                Status::Ready,
                Status::Running,
                Status::Blocked,
                Status::Done,
            ]) {
                Some(id) => b.archive_task(&id).map(drop),
                None => continue,
            },
            "record_task_failure" => match target(&[Status::Running, Status::Ready]) {
                Some(id) => b
                    .record_task_failure(&FailureReport {
                        failure_limit: [None, Some(1), Some(2), Some(3)][rng.below(4)],
                        release_claim: rng.coin(),
                        end_run: rng.coin(),
                        force_trip: rng.below(4) == 0,
                        ..FailureReport::new(&id, outcomes[rng.below(outcomes.len())], "failed")
                    })
                    .map(drop),
                None => continue,
            },
            "schedule" => {
                match target(&[
                    Status::Todo,
                    Status::Ready,
                    Status::Running,
                    Status::Blocked,
                ]) {
                    Some(id) => b
                        .schedule_task(&id, rng.coin().then_some("later"), None, None)
                        .map(drop),
                    None => continue,
                }
            }
            "promote" => match target(&[Status::Todo, Status::Blocked]) {
                Some(id) => b
                    .promote_task(
                        &id,
                        &PromoteOptions {
                            force: rng.coin(),
                            dry_run: rng.below(4) == 0,
                            ..Default::default()
                        },
                    )
                    .map(drop),
                None => continue,
            },
            "heartbeat" => match target(&[Status::Running]) {
                Some(id) => b.heartbeat_worker(&id, Some("alive"), None),
                None => continue,
            },
            "recompute" => b.recompute_ready().map(drop),
            "assign" => match target(&[Status::Todo, Status::Ready, Status::Blocked]) {
                Some(id) => b
                    .assign_task(&id, Some(["worker", "other"][rng.below(2)]))
                    .map(drop),
                None => continue,
            },
            other => unreachable!("{other}"),
        };
        match result {
            Ok(()) => succeeded[op] += 1,
            Err(KernelError::Refused {
                task_id, action, ..
            }) => {
                refused += 1;
                let after = b.snapshot().unwrap();
                // The one refusal that writes: a claim that finds an unfinished parent demotes
                // the task and records `claim_rejected` (REF §6.1).
                let demoted = action == "claim"
                    && b.list_events(&task_id, Some(1)).unwrap()[0].kind == "claim_rejected"
                    && status(b, &task_id) == Status::Todo;
                // And an empty completion records `completion_blocked_empty_result` (UP §5).
                let empty = action == "complete"
                    && b.list_events(&task_id, Some(1)).unwrap()[0].kind
                        == "completion_blocked_empty_result"
                    && after.len() == before.len() + 1;
                assert!(
                    after == before || demoted || empty,
                    "step {step}: refused {} {task_id} changed the database",
                    OPS[op]
                );
            }
            Err(e) => panic!("step {step}: {} failed unexpectedly: {e:?}", OPS[op]),
        }
        let violations = b.check_invariants().unwrap();
        assert!(
            violations.is_empty(),
            "step {step} ({}) broke invariants: {violations:#?}",
            OPS[op]
        );
        tb.advance(rng.below(120) as i64);
    }

    // The scenario really exercised the state machine.
    for (i, name) in OPS.iter().enumerate() {
        assert!(
            succeeded[i] >= 3,
            "only {} successful {name}: {succeeded:?}",
            succeeded[i]
        );
    }
    assert!(refused >= 5, "only {refused} refusals");
}

#[test]
fn fix5_breaker_trip_on_a_running_task_leaves_no_claim_or_open_run() {
    // REF §8.6: a trip sets `status='blocked'` and, off the spawn path, leaves the claim (and
    // the open run) to the caller. A blocked task holding a claim or an open run breaks the
    // invariant; this kernel releases both whenever the breaker trips.
    let tb = TestBoard::new();
    let b = &tb.board;
    for (release_claim, end_run) in [(false, false), (true, false), (false, true)] {
        let id = tb.task("trips while running");
        let c = b.claim_task(&id, None).unwrap();
        let v = b
            .record_task_failure(&FailureReport {
                failure_limit: Some(1),
                release_claim,
                end_run,
                ..FailureReport::new(&id, RunOutcome::TimedOut, "elapsed 6s > limit 4s")
            })
            .unwrap();
        assert!(v.tripped);
        assert_eq!(
            v.run_id,
            Some(c.run_id),
            "the open run is closed by the trip"
        );
        let t = b.get_task(&id).unwrap();
        assert_eq!(t.status, Status::Blocked);
        assert_eq!((t.claim_lock, t.current_run_id), (None, None));
        let run = b.get_run(c.run_id).unwrap();
        assert_eq!(run.outcome.as_deref(), Some("gave_up"));
        assert!(run.ended_at.is_some());
        assert_invariants(b);
    }
    // Below the limit, releasing the claim closes the run with the failure's outcome.
    let id = tb.task("fails once");
    let c = b.claim_task(&id, None).unwrap();
    let v = b
        .record_task_failure(&FailureReport {
            release_claim: true,
            ..FailureReport::new(&id, RunOutcome::SpawnFailed, "workspace: denied")
        })
        .unwrap();
    assert!(!v.tripped);
    assert_eq!(status(b, &id), Status::Ready);
    assert_eq!(
        b.get_run(c.run_id).unwrap().outcome.as_deref(),
        Some("spawn_failed")
    );
    assert_invariants(b);
}
