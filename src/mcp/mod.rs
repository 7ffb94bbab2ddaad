//! The MCP server: the `kanban_*` tools over stdio (`hermes-kanban mcp`) and streamable HTTP
//! (`/mcp` in `serve`; the tools themselves are in [`tools`], one file each). Owns scoping — a
//! worker sees only its lifecycle tools and may mutate only its own task; an orchestrator also gets
//! `kanban_list` and `kanban_unblock` — the instructions and prompts, and the mapping of kernel
//! errors to `isError` tool results. Boards come from the [`Kanban`] home it is given (existing
//! boards only: the server never creates a board). Tool schemas are listed in their portable form
//! ([`portable`]). Every tool body is a kernel call; no rule is re-implemented here.

pub mod portable;
mod stdio;
mod tools;

use std::collections::BTreeSet;
use std::sync::Arc;

use rmcp::handler::server::router::prompt::PromptRouter;
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::tool::ToolCallContext;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, DiscoverResult,
    GetPromptRequestParams, GetPromptResult, Implementation, InitializeRequestParams,
    InitializeResult, ListPromptsResult, ListToolsResult, PaginatedRequestParams, PromptMessage,
    Role, ServerCapabilities, ServerConfig,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData, RoleServer, ServerHandler, prompt, prompt_router};

use crate::kernel::{Board, Env, Kanban, KernelError};

pub use stdio::{LineTransport, MAX_LINE_BYTES};
pub use tools::{
    AttachParams, AttachUrlParams, AttachmentsParams, BlockKindParam, BlockParams, BoolLike,
    CommentParams, CompleteParams, CreateParams, HeartbeatParams, InitialStatusParam, LinkParams,
    ListParams, RequestChangesParams, RequestReviewParams, ScheduleParams, ShowParams, StatusParam,
    StringList, UnblockParams, WorkspaceKindParam,
};

/// Worker guidance (our words), sent as `instructions` to workers and offered as a prompt.
pub const GUIDANCE: &str = include_str!("../../prompts/kanban-guidance.md");
/// Orchestrator guidance, sent to everyone else and offered as a prompt.
pub const ORCHESTRATOR: &str = include_str!("../../prompts/kanban-orchestrator.md");

/// Tools a worker sees.
pub const WORKER_TOOLS: &[&str] = &[
    "kanban_show",
    "kanban_complete",
    "kanban_block",
    "kanban_heartbeat",
    "kanban_comment",
    "kanban_create",
    "kanban_link",
    "kanban_attach",
    "kanban_attachments",
    "kanban_attach_url",
    "kanban_schedule",
    "kanban_request_review",
    "kanban_request_changes",
];
/// Tools only an orchestrator sees, in addition to the worker tools.
pub const ORCHESTRATOR_TOOLS: &[&str] = &["kanban_list", "kanban_unblock"];

/// Who is calling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// A spawned worker: may mutate only `task_id`; `run_id` guards against a reclaimed
    /// worker closing its successor's run.
    Worker {
        /// The worker's task.
        task_id: String,
        /// Its run (from `HERMES_KANBAN_RUN_ID` or the run token).
        run_id: Option<i64>,
        /// Claim lock to extend on heartbeat (`HERMES_KANBAN_CLAIM_LOCK`).
        claim_lock: Option<String>,
        /// Board the worker is pinned to (HTTP tokens), else the env chain.
        board: Option<String>,
        /// Identity for authorship (`HERMES_PROFILE`).
        profile: Option<String>,
    },
    /// An orchestrator or a human's agent: every tool, any task.
    Orchestrator {
        /// Identity for authorship.
        profile: Option<String>,
    },
}

impl Scope {
    /// The scope a stdio server gets from its environment (`HERMES_KANBAN_TASK` set ⇒ worker).
    pub fn from_env(env: &Env) -> Scope {
        let profile = env.get("HERMES_PROFILE").map(str::to_string);
        match env.get("HERMES_KANBAN_TASK") {
            Some(t) => Scope::Worker {
                task_id: t.to_string(),
                run_id: env.get("HERMES_KANBAN_RUN_ID").and_then(|r| r.parse().ok()),
                claim_lock: env.get("HERMES_KANBAN_CLAIM_LOCK").map(str::to_string),
                board: None,
                profile,
            },
            None => Scope::Orchestrator { profile },
        }
    }

    /// Whether this scope may call `tool`.
    pub fn allows(&self, tool: &str) -> bool {
        WORKER_TOOLS.contains(&tool)
            || (matches!(self, Scope::Orchestrator { .. }) && ORCHESTRATOR_TOOLS.contains(&tool))
    }
}

/// Shared server state: the home (board handles, shared with the REST API and the dispatcher
/// in `serve`), default board, tool narrowing.
pub struct McpState {
    pub(crate) env: Env,
    pub(crate) board: Option<String>,
    /// `--tools a,b`: only these tools are listed (None = all the scope allows).
    pub(crate) only: Option<BTreeSet<String>>,
    /// The scope of a stdio session (HTTP requests carry theirs in the request).
    pub(crate) stdio_scope: Option<Scope>,
    home: Kanban,
}

impl McpState {
    /// State for a server on `home` (a [`Kanban`], or an [`Env`] for its SQLite boards),
    /// default board `board`, narrowed to `only` when given.
    pub fn new(
        home: impl Into<Kanban>,
        board: Option<String>,
        only: Option<BTreeSet<String>>,
        stdio: bool,
    ) -> Arc<McpState> {
        let home = home.into();
        let env = home.env().clone();
        let stdio_scope = stdio.then(|| Scope::from_env(&env));
        Arc::new(McpState {
            env,
            board,
            only,
            stdio_scope,
            home,
        })
    }

    /// Run `f` on the board `slug` (or the default chain), through the home's shared handle.
    /// A board without a database is [`KernelError::NoDatabase`]; nothing is created.
    pub(crate) fn with_board<T>(
        &self,
        slug: Option<&str>,
        f: impl FnOnce(&Board) -> Result<T, KernelError>,
    ) -> Result<T, KernelError> {
        let handle = self.home.board(slug.or(self.board.as_deref()))?;
        // Writes are group-committed with concurrent calls' (returns once on disk).
        handle.call(f)
    }

    /// Find which board a run token belongs to (tokens are random; every board is checked).
    pub fn resolve_token(&self, token: &str) -> Option<(String, crate::kernel::RunScope)> {
        let boards = self.home.list(true).ok()?;
        for b in boards {
            let slug = b.meta.slug.clone();
            if let Ok(Some(scope)) =
                self.with_board(Some(&slug), |board| board.resolve_run_token(token))
            {
                return Some((slug, scope));
            }
        }
        None
    }

    fn tool_visible(&self, scope: &Scope, tool: &str) -> bool {
        scope.allows(tool) && self.only.as_ref().is_none_or(|o| o.contains(tool))
    }
}

/// The server handler (one per MCP session; cheap to create).
#[derive(Clone)]
pub struct KanbanMcp {
    pub(crate) state: Arc<McpState>,
    tool_router: ToolRouter<KanbanMcp>,
    prompt_router: PromptRouter<KanbanMcp>,
}

impl KanbanMcp {
    /// A handler over shared state.
    pub fn new(state: Arc<McpState>) -> Self {
        KanbanMcp {
            state,
            tool_router: Self::tool_router(),
            prompt_router: Self::prompt_router(),
        }
    }

    /// Every tool definition (all scopes) as listed to clients: input schemas in their
    /// portable form ([`portable::portable`]). Also what `schemas/` holds.
    pub fn all_tools() -> Vec<rmcp::model::Tool> {
        static TOOLS: std::sync::OnceLock<Vec<rmcp::model::Tool>> = std::sync::OnceLock::new();
        TOOLS
            .get_or_init(|| {
                Self::tool_router()
                    .list_all()
                    .into_iter()
                    .map(|mut t| {
                        t.input_schema = Arc::new(portable::portable(&t.input_schema));
                        t
                    })
                    .collect()
            })
            .clone()
    }

    /// The caller's scope: stdio → from env; HTTP → the [`Scope`] the HTTP layer attached to
    /// the request (none → refused).
    pub(crate) fn scope_of(&self, ctx: &RequestContext<RoleServer>) -> Option<Scope> {
        if let Some(s) = &self.state.stdio_scope {
            return Some(s.clone());
        }
        ctx.extensions
            .get::<axum::http::request::Parts>()
            .and_then(|p| p.extensions.get::<Scope>().cloned())
            .or_else(|| ctx.extensions.get::<Scope>().cloned())
    }

    fn info_for(&self, scope: Option<&Scope>) -> ServerConfig {
        let instructions = match scope {
            Some(Scope::Worker { .. }) => GUIDANCE,
            _ => ORCHESTRATOR,
        };
        ServerConfig::new(
            ServerCapabilities::builder()
                .enable_tools()
                .enable_prompts()
                .build(),
        )
        .with_server_info(Implementation::new(
            env!("CARGO_PKG_NAME"),
            env!("CARGO_PKG_VERSION"),
        ))
        .with_instructions(instructions)
    }
}

#[prompt_router(vis = "pub(crate)")]
impl KanbanMcp {
    /// How to work one kanban task: orient, heartbeat, block well, hand off (worker guidance).
    #[prompt(name = "kanban-guidance")]
    async fn guidance_prompt(&self) -> Result<GetPromptResult, ErrorData> {
        Ok(
            GetPromptResult::new(vec![PromptMessage::new_text(Role::User, GUIDANCE)])
                .with_description("Worker lifecycle for a hermes-kanban task"),
        )
    }

    /// How to plan work on a kanban board: decompose, fan out, unstick (orchestrator guidance).
    #[prompt(name = "kanban-orchestrator")]
    async fn orchestrator_prompt(&self) -> Result<GetPromptResult, ErrorData> {
        Ok(
            GetPromptResult::new(vec![PromptMessage::new_text(Role::User, ORCHESTRATOR)])
                .with_description("Orchestrating a hermes-kanban board"),
        )
    }
}

impl ServerHandler for KanbanMcp {
    fn get_info(&self) -> ServerConfig {
        self.info_for(self.state.stdio_scope.as_ref())
    }

    async fn initialize(
        &self,
        request: InitializeRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<InitializeResult, ErrorData> {
        context.peer.set_peer_info(request.clone());
        let scope = self.scope_of(&context);
        let mut info = self.info_for(scope.as_ref());
        let negotiated = self.negotiate_initialize(&request)?;
        info.protocol_version = negotiated.protocol_version;
        Ok(info)
    }

    async fn discover(
        &self,
        context: RequestContext<RoleServer>,
    ) -> Result<DiscoverResult, ErrorData> {
        let scope = self.scope_of(&context);
        Ok(DiscoverResult::from_server_info(
            self.supported_protocol_versions().into_owned(),
            self.info_for(scope.as_ref()),
        ))
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        let scope = self.scope_of(&context);
        let tools = Self::all_tools()
            .into_iter()
            .filter(|t| {
                scope
                    .as_ref()
                    .is_some_and(|s| self.state.tool_visible(s, &t.name))
            })
            .collect();
        let hints = context
            .protocol_version()
            .is_some_and(|v| v >= rmcp::model::ProtocolVersion::V_2026_07_28);
        Ok(ListToolsResult {
            result_type: Some(rmcp::model::ResultType::COMPLETE),
            tools,
            meta: None,
            next_cursor: None,
            ttl_ms: hints.then_some(0),
            cache_scope: hints.then_some(rmcp::model::CacheScope::Private),
        })
    }

    fn get_tool(&self, name: &str) -> Option<rmcp::model::Tool> {
        Self::all_tools().into_iter().find(|t| t.name == name)
    }

    async fn call_tool(
        &self,
        mut request: CallToolRequestParams,
        mut context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let Some(scope) = self.scope_of(&context) else {
            return Err(ErrorData::invalid_request(
                "no scope for this request",
                None,
            ));
        };
        if !self.state.tool_visible(&scope, &request.name) {
            return Err(ErrorData::invalid_params("tool not found", None));
        }
        // Bad arguments: an `isError` result that names the argument (moved out and back to
        // avoid copying a large attachment).
        let args = serde_json::Value::Object(request.arguments.take().unwrap_or_default());
        if let Some(msg) = tools::argument_error(&request.name, &args) {
            return Ok(CallToolResult::error(vec![ContentBlock::text(msg)]).into());
        }
        if let serde_json::Value::Object(m) = args {
            request.arguments = Some(m);
        }
        context.extensions.insert(scope);
        let tcc = ToolCallContext::new(self, request, context);
        self.tool_router.call(tcc).await
    }

    async fn list_prompts(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListPromptsResult, ErrorData> {
        Ok(ListPromptsResult::with_all_items(
            self.prompt_router.list_all(),
        ))
    }

    async fn get_prompt(
        &self,
        request: GetPromptRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<rmcp::model::GetPromptResponse, ErrorData> {
        let pcc = rmcp::handler::server::prompt::PromptContext::new(
            self,
            request.name,
            request.arguments,
            context,
        );
        self.prompt_router.get_prompt(pcc).await
    }
}
