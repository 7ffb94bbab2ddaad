//! What counts as a profile under `<root>/profiles/` (Hermes ~0.22's rule): the identity
//! files, the tombstones, and the names the dispatcher and `assignees` may spawn.

use serde::Serialize;

use crate::kernel::validate as v;

/// Files that make a `profiles/<name>/` directory a profile (UP §10, Hermes'
/// `_PROFILE_IDENTITY_MARKERS`). A directory with none of them is a stray directory (cron
/// heartbeats, caches), not a profile.
pub const PROFILE_IDENTITY_FILES: [&str; 6] = [
    "config.yaml",
    ".env",
    "SOUL.md",
    "profile.yaml",
    "auth.json",
    "state.db",
];

/// What `<root>/profiles/<name>/` is, by Hermes ~0.22's rule (`named_profile_is_live`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ProfileState {
    /// `default` (the root profile every home has) or a live named profile.
    Live,
    /// Not a valid profile name (it would not be a directory name under `profiles/`).
    InvalidName,
    /// No `profiles/<name>/` directory.
    Missing,
    /// The directory exists but holds none of [`PROFILE_IDENTITY_FILES`].
    NoIdentity,
    /// A tombstone `profiles/.deleted/<name>` exists: the profile was deleted.
    Deleted,
}

impl ProfileState {
    /// Why a profile in this state cannot be spawned (`None` when it can).
    pub fn reason(self, root: &std::path::Path, name: &str) -> Option<String> {
        let dir = root.join("profiles").join(name);
        match self {
            ProfileState::Live => None,
            ProfileState::InvalidName => Some(format!("{name:?} is not a valid profile name")),
            ProfileState::Missing => Some(format!("no profile directory {}", dir.display())),
            ProfileState::NoIdentity => Some(format!(
                "{} has none of {}: a bare directory is not a profile (add a config.yaml)",
                dir.display(),
                PROFILE_IDENTITY_FILES.join(", ")
            )),
            ProfileState::Deleted => Some(format!(
                "profile deleted (tombstone {})",
                root.join("profiles").join(".deleted").join(name).display()
            )),
        }
    }
}

/// Classify `profile` under `<root>/profiles/` (UP §10 "What counts as a profile"): `default`
/// is always live; a named profile needs a directory with at least one identity file (a
/// dangling symlink counts, as in Hermes) and no tombstone `profiles/.deleted/<name>`.
pub fn profile_state(root: &std::path::Path, profile: &str) -> ProfileState {
    if profile == "default" {
        return ProfileState::Live;
    }
    if v::profile_name("profile", Some(profile))
        .ok()
        .flatten()
        .as_deref()
        != Some(profile)
    {
        return ProfileState::InvalidName;
    }
    let profiles = root.join("profiles");
    let dir = profiles.join(profile);
    if !dir.is_dir() {
        return ProfileState::Missing;
    }
    if std::fs::symlink_metadata(profiles.join(".deleted").join(profile)).is_ok() {
        return ProfileState::Deleted;
    }
    let identity = PROFILE_IDENTITY_FILES.iter().any(|f| {
        let p = dir.join(f);
        p.is_file() || p.is_symlink()
    });
    if identity {
        ProfileState::Live
    } else {
        ProfileState::NoIdentity
    }
}

/// Directory names under `<root>/profiles/` that could be profiles (valid names), live or not.
pub(super) fn profile_dirs(root: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(root.join("profiles")) {
        for e in rd.flatten() {
            if e.path().is_dir()
                && let Ok(n) = e.file_name().into_string()
                && v::profile_name("profile", Some(&n))
                    .ok()
                    .flatten()
                    .as_deref()
                    == Some(n.as_str())
            {
                out.push(n);
            }
        }
    }
    out
}

/// Live profile names under `<root>/profiles/` (see [`profile_state`]), plus `default`.
pub fn on_disk_profiles(root: &std::path::Path) -> Vec<String> {
    let mut out = vec!["default".to_string()];
    for n in profile_dirs(root) {
        if !out.contains(&n) && profile_state(root, &n) == ProfileState::Live {
            out.push(n);
        }
    }
    out
}

/// Whether `profile` can be spawned: `default` always; others when they are live profiles
/// ([`profile_state`]).
pub fn profile_exists(root: &std::path::Path, profile: &str) -> bool {
    profile_state(root, profile) == ProfileState::Live
}
