//! The kernel: the only place SQL lives. A synchronous library over one SQLite file per board
//! that implements Hermes Kanban 0.19.0's data model and state machine, with the deliberate
//! fixes of SPEC §3.3. Every mutation is one `BEGIN IMMEDIATE` transaction whose UPDATE guards
//! on the expected state (compare-and-swap). Front doors (CLI, MCP, REST, dispatcher) call
//! [`Board`] methods and never re-implement a rule. The public API exposes no SQLite types, so a
//! second backend can sit behind it.

mod attachments;
mod board;
mod board_page;
mod board_view;
mod breaker;
mod comments;
mod context;
mod diagnostics;
mod env;
mod error;
mod events;
pub mod fence;
mod gc;
mod graph;
mod home;
mod invariants;
mod lifecycle;
mod listing;
mod liveness;
mod notify;
mod paths;
mod plan;
mod repair;
mod review;
mod runs;
mod seed;
mod skills;
pub(crate) mod store;
mod swarm;
mod tasks;
mod tokens;
mod transfer;
mod transitions;
mod types;
pub mod validate;
mod webhooks;

pub use attachments::attachment_name;
pub use board::{
    BLOCK_RECURRENCE_LIMIT, Board, Clock, DEFAULT_CLAIM_TTL_SECONDS, DEFAULT_FAILURE_LIMIT,
    OpenMode, default_claimer, hostname,
};
pub use board_page::{
    CAPPED_COLUMNS, CappedBoard, ColumnCursor, ColumnPage, DEFAULT_COLUMN_LIMIT, MAX_COLUMN_LIMIT,
};
pub use board_view::{
    ActiveWorker, BoardCard, BoardFacts, BoardPatch, BoardView, BoardViewQuery, STATUS_EVENT_KINDS,
    check_workdir, update_board,
};
pub use breaker::{FailureReport, FailureVerdict};
pub use context::{ParentHandoff, TaskDetail, local_ts, relative_age, sorted_json};
pub use diagnostics::{
    Action, Diagnostic, DiagnosticsConfig, Severity, SkillCheck, TaskDiagnostics, diagnose,
};
pub use env::{Env, is_placeholder};
pub use error::{KernelError, Result};
pub use events::{EventFilter, KNOWN_EVENT_KINDS};
pub use gc::{GcReport, strictly_inside};
pub use home::{Backend, DATABASE_URL_VAR, Kanban, SharedBoard, redact_url};
pub use lifecycle::{
    BlockRequest, Blocked, Claim, Completed, Completion, PromoteOptions, REVIEW_APPROVED_NOTE,
    Reclaimed,
};
pub use listing::{TaskDict, TaskLine};
pub use liveness::{
    ExitClass, GUARD_ACTIVE_PR, GUARD_BLOCKER_AUTH, GUARD_RATE_LIMIT, GUARD_RECENT_SUCCESS,
    HEARTBEAT_STALE_SECONDS, PROTOCOL_VIOLATION_LIMIT, QueuedTask, RATE_LIMIT_EXIT_CODE,
    RECLAIM_DEFER_SECONDS, RunProcess, RunningTask, SettledBy, SettledReport, Settlement,
    TERMINAL_PROVIDER_EXIT_CODE, WorkerExit,
};
pub use notify::{ClaimedEvents, SubKey};
pub use paths::{
    BoardEntry, BoardMeta, BoardPaths, DEFAULT_BOARD, NewBoard, active_profile_name, board_exists,
    create_board, default_display_name, hermes_root, kanban_home, list_boards, normalize_slug,
    read_board_meta, remove_board, rename_board, resolve_board, set_default_workdir, switch_board,
};
pub use plan::{
    Attempt, CapClaim, CappedTask, DispatchPlan, GuardedTask, Lane, PlanOptions, Queued,
    SpawnActions, SpawnCaps, SpawnOutcome, SpawnPolicy, SpawnQueue, SpawnedTask, dispatch_allowed,
};
pub use repair::{REPAIR_BACKUPS_KEPT, RepairReport, repair_db};
pub use review::{ChangesRequested, ReviewReopened, ReviewRequest, ReviewRequested};
pub use runs::RunStateField;
pub use seed::SeedTask;
pub use skills::{
    KANBAN_WORKER_SKILL, WorkerSkills, profile_has_skill, profile_home, skill_dirs, worker_skills,
};
pub use store::sqlite::{DEFAULT_BUSY_TIMEOUT_MS, JournalInfo, SCHEMA_VERSION};
pub use swarm::{BLACKBOARD_PREFIX, Swarm, SwarmSpec, SwarmWorker};
pub use tasks::{
    AssigneeInfo, Created, InitialStatus, ListFilter, NewTask, PROFILE_IDENTITY_FILES, PageKey,
    ProfileState, ResultEdit, Stats, TaskPatch, TaskSort, on_disk_profiles, profile_exists,
    profile_state,
};
pub use tokens::{RunScope, token_hash};
pub use transfer::{
    ARCHIVE_FORMAT, ARCHIVE_FORMAT_VERSION, ExportReport, ImportReport, export_board, import_board,
};
pub use transitions::{DirectMove, MoveDetails, TaskChange};
pub use types::{
    Attachment, BlockKind, Comment, Event, NotifySub, Run, RunOutcome, Status, Task, WorkspaceKind,
};
pub use webhooks::{WebhookBatch, WebhookCursor, WebhookEvent, WebhookFilter};
