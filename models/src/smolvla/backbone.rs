//! Finding the backbone a policy names by `vlm_model_name` (a Hugging Face id such as
//! `HuggingFaceTB/SmolVLM2-500M-Video-Instruct`, or a folder): its `config.json` and
//! tokenizer. The places, in order: a folder given explicitly (`--vlm DIR`), the name itself
//! as a local folder, then the Hugging Face cache (`$HF_HUB_CACHE`, else `$HF_HOME/hub`, else
//! `~/.cache/huggingface/hub`), `models--ORG--NAME/snapshots/<the revision refs/main names>/`.
//! Nothing is downloaded; when no place holds the backbone, the error lists every place tried.

use std::path::{Path, PathBuf};

use crate::error::{ModelError, Result};

/// Where Hugging Face caches live on this machine.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HubCache {
    /// The `hub` folder: `$HF_HUB_CACHE`, else `$HF_HOME/hub`, else
    /// `~/.cache/huggingface/hub`; `None` when none of those can be named.
    pub hub: Option<PathBuf>,
}

impl HubCache {
    /// The cache the environment names, as `huggingface_hub` finds it.
    pub fn from_env() -> Self {
        let var = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty()).map(PathBuf::from);
        let hub = var("HF_HUB_CACHE")
            .or_else(|| var("HF_HOME").map(|home| home.join("hub")))
            .or_else(|| var("XDG_CACHE_HOME").map(|cache| cache.join("huggingface").join("hub")))
            .or_else(|| var("HOME").map(|home| home.join(".cache").join("huggingface").join("hub")));
        Self { hub }
    }

    /// A cache rooted at `hf_home` (its `hub` folder).
    pub fn at_home(hf_home: &Path) -> Self {
        Self {
            hub: Some(hf_home.join("hub")),
        }
    }

    /// The snapshot folder of model `id` (`ORG/NAME`) that `refs/main` names, whether or not
    /// it exists; `None` when the id is not of that form or no ref can be read.
    fn snapshot(&self, id: &str) -> std::result::Result<PathBuf, PathBuf> {
        let hub = self
            .hub
            .clone()
            .unwrap_or_else(|| PathBuf::from("~/.cache/huggingface/hub"));
        let repo = hub.join(format!("models--{}", id.replace('/', "--")));
        let refs = repo.join("refs").join("main");
        match std::fs::read_to_string(&refs) {
            Ok(revision) if is_revision(revision.trim()) => Ok(repo.join("snapshots").join(revision.trim())),
            _ => Err(refs),
        }
    }
}

fn is_revision(text: &str) -> bool {
    !text.is_empty() && text.chars().all(|c| c.is_ascii_alphanumeric())
}

/// The backbone folder for `name`: `explicit` when given, else the name as a folder, else
/// the cache's snapshot. Each candidate must hold `config.json`.
pub fn resolve(name: &str, explicit: Option<&Path>, cache: &HubCache) -> Result<PathBuf> {
    resolve_holding(name, "config.json", explicit, cache)
}

/// As [`resolve`], each candidate holding `marker` (a processor's `processor_config.json`).
pub fn resolve_holding(name: &str, marker: &str, explicit: Option<&Path>, cache: &HubCache) -> Result<PathBuf> {
    let mut tried = Vec::new();
    let holds_config = |dir: &Path| dir.join(marker).is_file();
    if let Some(dir) = explicit {
        if holds_config(dir) {
            return Ok(dir.to_path_buf());
        }
        tried.push(format!("{} (given explicitly)", dir.display()));
    } else {
        let local = Path::new(name);
        if holds_config(local) {
            return Ok(local.to_path_buf());
        }
        tried.push(format!("{} (the name as a local folder)", local.display()));
        match cache.snapshot(name) {
            Ok(snapshot) if holds_config(&snapshot) => return Ok(snapshot),
            Ok(snapshot) => tried.push(format!("{} (the Hugging Face cache)", snapshot.display())),
            Err(refs) => tried.push(format!("{} (the Hugging Face cache's ref)", refs.display())),
        }
    }
    Err(ModelError::BackboneNotFound {
        name: name.to_string(),
        tried,
    })
}
