//! The kernel's one error type. Every refusal is a typed variant with a message that names the
//! task or field and says what to do next; front doors map variants to exit codes, HTTP statuses
//! and MCP `isError` results through [`KernelError::kind`].

use std::path::PathBuf;

/// What went wrong in a kernel call. No variant exposes SQLite types.
#[derive(Debug, thiserror::Error)]
pub enum KernelError {
    /// The task id does not exist on this board.
    #[error("no such task: {0}; check the id and the board (list the board's tasks to find it)")]
    TaskNotFound(String),

    /// An argument was missing, malformed or out of range.
    #[error("invalid {field}: {message}")]
    Invalid {
        /// The offending field or parameter name.
        field: &'static str,
        /// What is wrong with it and what is accepted.
        message: String,
    },

    /// The transition is not allowed from the task's current state.
    #[error("cannot {action} {task_id}: {reason}")]
    Refused {
        /// The task the call addressed.
        task_id: String,
        /// The verb that was refused (`complete`, `claim`, ...).
        action: &'static str,
        /// Why, in words that include the current status and what to do instead.
        reason: String,
    },

    /// The caller's run is no longer the task's current run (a reclaimed worker).
    #[error(
        "stale run: task {task_id} is now on run {current}, not run {expected}; this worker was \
        reclaimed and must stop"
    )]
    StaleRun {
        /// Task addressed.
        task_id: String,
        /// Run id the caller claimed to hold.
        expected: i64,
        /// The task's current run id (`none` when no run is open).
        current: String,
    },

    /// `link` of a task to itself.
    #[error("a task cannot depend on itself ({0})")]
    SelfLink(String),

    /// `link` that would close a dependency cycle.
    #[error("linking {parent} -> {child} would create a cycle")]
    Cycle {
        /// Proposed parent.
        parent: String,
        /// Proposed child.
        child: String,
    },

    /// `unlink` of an edge that does not exist.
    #[error("no link {parent} -> {child}")]
    NoSuchLink {
        /// Parent id.
        parent: String,
        /// Child id.
        child: String,
    },

    /// `complete` named created cards that do not exist or were not created by this task.
    #[error(
        "completion of {task_id} blocked: created_cards {phantom:?} do not exist or were not \
        created by this task; the task is unchanged — retry with the ids kanban_create returned, \
        or with no created_cards"
    )]
    HallucinatedCards {
        /// Task being completed.
        task_id: String,
        /// Ids that failed verification.
        phantom: Vec<String>,
        /// Ids that passed.
        verified: Vec<String>,
    },

    /// A board slug that does not match `^[a-z0-9][a-z0-9_-]{0,63}$`.
    #[error(
        "invalid board slug {0:?}: use 1-64 characters of a-z, 0-9, '-' and '_', starting with a \
        letter or digit"
    )]
    InvalidSlug(String),

    /// A named board that has no directory.
    #[error("board '{0}' does not exist; create it with `hermes-kanban boards create {0}`")]
    BoardNotFound(String),

    /// The board has no database file yet, and this caller must not create one.
    #[error(
        "board '{slug}' has no database at {}; nothing was created. Point at the right board with \
        HERMES_HOME (the Hermes home holding kanban.db), --board SLUG or HERMES_KANBAN_DB, or \
        create it with `hermes-kanban init`",
        path.display()
    )]
    NoDatabase {
        /// The resolved board slug.
        slug: String,
        /// The DB path that does not exist.
        path: PathBuf,
    },

    /// A worker's own task is not on the board this process resolved (it is pointed at
    /// another board than the dispatcher that spawned it).
    #[error(
        "your task {task_id} is not on board '{slug}' ({}); this process is pointed at the wrong \
        board: pass the worker's HERMES_HOME or HERMES_KANBAN_DB, on PostgreSQL its \
        HERMES_KANBAN_BOARD (for `hermes-kanban mcp`: --db PATH / --board SLUG)",
        path.display()
    )]
    NotOnBoard {
        /// The worker's task.
        task_id: String,
        /// The board that was searched.
        slug: String,
        /// Its DB path.
        path: PathBuf,
    },

    /// A board operation that is not allowed (removing `default`, ...).
    #[error("{0}")]
    BoardRefused(String),

    /// The file at the DB path is not an SQLite database.
    #[error("{}: not an SQLite database ({detail}); nothing was changed — move it aside or point \
        HERMES_KANBAN_DB elsewhere", path.display())]
    NotADatabase {
        /// The DB path.
        path: PathBuf,
        /// SQLite's own words.
        detail: String,
    },

    /// The database is damaged.
    #[error("{}: database is corrupt ({detail}); nothing was changed — restore a backup or run \
        `sqlite3 {} .recover`", path.display(), path.display())]
    Corrupt {
        /// The DB path.
        path: PathBuf,
        /// SQLite's own words.
        detail: String,
    },

    /// Another writer held the database longer than the busy timeout.
    #[error(
        "database is busy: another process held the write lock past the busy timeout \
        (HERMES_KANBAN_BUSY_TIMEOUT_MS); retry"
    )]
    Busy,

    /// The database server cannot be reached (refused, timed out, or the connection was lost
    /// and could not be re-opened). Never a fallback to another store.
    #[error(
        "cannot reach the PostgreSQL database at {url}: {detail}; check that the server runs and \
        the URL (--database-url, HERMES_KANBAN_DATABASE_URL or kanban.database_url) is right"
    )]
    Unavailable {
        /// The database URL without its password.
        url: String,
        /// What the driver said (one line).
        detail: String,
    },

    /// No attachment with that id.
    #[error("no such attachment: {0}; list the task's attachments to find its id")]
    AttachmentNotFound(i64),

    /// A file-system operation failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The path involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },

    /// A delegated child (`HERMES_DELEGATED_CHILD_CONTEXT`) tried to change a fenced board.
    #[error(
        "{}: refused — this process runs in a delegated child context \
        (HERMES_DELEGATED_CHILD_CONTEXT={marker}) and delegated children cannot mutate Kanban \
        tasks or boards; hand the change back to the worker that owns the task (it can), or unset \
        HERMES_DELEGATED_CHILD_CONTEXT if this is not a worker's subprocess", path.display()
    )]
    Fenced {
        /// The board DB or kanban root the mutation addressed.
        path: PathBuf,
        /// The marker's value (the fenced root, or `1`).
        marker: String,
    },

    /// Any other storage failure.
    #[error("storage error: {0}")]
    Storage(String),
}

impl KernelError {
    /// A stable, machine-readable category: `not_found`, `invalid`, `refused`, `conflict`,
    /// `storage`. REST maps them to 404/400/409/409/500, the CLI to exit 1.
    pub fn kind(&self) -> &'static str {
        match self {
            KernelError::TaskNotFound(_)
            | KernelError::BoardNotFound(_)
            | KernelError::NoDatabase { .. }
            | KernelError::NotOnBoard { .. }
            | KernelError::AttachmentNotFound(_)
            | KernelError::NoSuchLink { .. } => "not_found",
            KernelError::Invalid { .. }
            | KernelError::InvalidSlug(_)
            | KernelError::SelfLink(_)
            | KernelError::Cycle { .. } => "invalid",
            KernelError::Refused { .. }
            | KernelError::HallucinatedCards { .. }
            | KernelError::BoardRefused(_)
            | KernelError::Fenced { .. } => "refused",
            KernelError::StaleRun { .. } | KernelError::Busy => "conflict",
            KernelError::NotADatabase { .. }
            | KernelError::Corrupt { .. }
            | KernelError::Io { .. }
            | KernelError::Unavailable { .. }
            | KernelError::Storage(_) => "storage",
        }
    }

    pub(crate) fn invalid(field: &'static str, message: impl Into<String>) -> Self {
        KernelError::Invalid {
            field,
            message: message.into(),
        }
    }

    pub(crate) fn refused(
        task_id: impl Into<String>,
        action: &'static str,
        reason: impl Into<String>,
    ) -> Self {
        KernelError::Refused {
            task_id: task_id.into(),
            action,
            reason: reason.into(),
        }
    }

    /// The compare-and-swap guard of a transition: its guarded UPDATE of `task_id` changed `n`
    /// rows. Anything but one means another writer moved the task between the read and the
    /// write, and the transition is refused (nothing written; the caller may retry).
    pub(crate) fn cas(n: usize, task_id: &str, action: &'static str) -> Result<()> {
        if n == 1 {
            return Ok(());
        }
        Err(KernelError::refused(
            task_id,
            action,
            "the task changed underneath; retry",
        ))
    }

    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        KernelError::Io {
            path: path.into(),
            source,
        }
    }
}

impl KernelError {
    /// A caller that named run `expected` of `task_id`, whose current run is `current`
    /// (`None`: no run open) — the one way a stale worker's call is refused.
    pub fn stale_run(task_id: &str, expected: i64, current: Option<i64>) -> KernelError {
        KernelError::StaleRun {
            task_id: task_id.to_string(),
            expected,
            current: current
                .map(|r| r.to_string())
                .unwrap_or_else(|| "none".into()),
        }
    }
}

impl From<serde_json::Error> for KernelError {
    fn from(e: serde_json::Error) -> Self {
        KernelError::Storage(format!("json: {e}"))
    }
}

/// Kernel result alias.
pub type Result<T, E = KernelError> = std::result::Result<T, E>;
