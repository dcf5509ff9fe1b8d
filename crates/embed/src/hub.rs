//! Finding checkpoint files: in a folder, in the Hugging Face cache, or by download.

use std::net::{TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

use crate::manifest::{self, ModelFamily, PreprocessManifest};
use crate::preprocess::Preprocessor;
use crate::EmbedError;

/// How [`crate::load_pretrained`] and the `from_pretrained` constructors reach the hub.
///
/// Defaults: the revision pinned in the model's manifest (`main` for models without one),
/// the standard cache (`$HF_HUB_CACHE`, else `$HF_HOME/hub`, else
/// `~/.cache/huggingface/hub`), downloads allowed unless `HF_HUB_OFFLINE=1`, a progress bar.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct HubOptions {
    /// Branch, tag or commit; `None` for the manifest's pinned revision.
    pub revision: Option<String>,
    /// The hub cache folder (the one holding `models--org--name` folders).
    pub cache_dir: Option<PathBuf>,
    /// Never touch the network; only the cache is used.
    pub offline: bool,
    /// Hub address (default `$HF_ENDPOINT` or `https://huggingface.co`).
    pub endpoint: Option<String>,
    /// Show download progress.
    pub progress: bool,
}

impl Default for HubOptions {
    fn default() -> Self {
        let offline = std::env::var("HF_HUB_OFFLINE")
            .map(|v| {
                matches!(
                    v.trim().to_ascii_lowercase().as_str(),
                    "1" | "true" | "yes" | "on"
                )
            })
            .unwrap_or(false);
        Self {
            revision: None,
            cache_dir: None,
            offline,
            endpoint: std::env::var("HF_ENDPOINT").ok(),
            progress: true,
        }
    }
}

impl HubOptions {
    /// Sets the revision.
    pub fn revision(mut self, rev: impl Into<String>) -> Self {
        self.revision = Some(rev.into());
        self
    }

    /// Sets the cache folder.
    pub fn cache_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.cache_dir = Some(dir.into());
        self
    }

    /// Turns downloads off (or on).
    pub fn offline(mut self, offline: bool) -> Self {
        self.offline = offline;
        self
    }

    /// Turns the progress bar off (or on).
    pub fn progress(mut self, progress: bool) -> Self {
        self.progress = progress;
        self
    }

    /// The cache folder in use.
    pub fn resolved_cache_dir(&self) -> PathBuf {
        if let Some(d) = &self.cache_dir {
            return d.clone();
        }
        if let Ok(d) = std::env::var("HF_HUB_CACHE") {
            return PathBuf::from(d);
        }
        if let Ok(d) = std::env::var("HF_HOME") {
            return PathBuf::from(d).join("hub");
        }
        let home = std::env::var_os("HOME")
            .or_else(|| std::env::var_os("USERPROFILE"))
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("."));
        home.join(".cache").join("huggingface").join("hub")
    }
}

/// The files of one checkpoint, wherever they came from.
#[derive(Debug, Clone)]
pub(crate) struct ModelFiles {
    /// Identifier used as [`crate::Embedder::model_id`].
    pub model_id: String,
    pub family: ModelFamily,
    pub config: PathBuf,
    pub preprocessor: Option<PathBuf>,
    pub manifest_preprocess: Option<PreprocessManifest>,
    pub tokenizer: Option<PathBuf>,
    pub weights: PathBuf,
    pub expected_dim: Option<usize>,
}

const WEIGHT_NAMES: [&str; 3] = [
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
];

pub(crate) fn family_of(config: &Path) -> Result<ModelFamily, EmbedError> {
    let text = std::fs::read_to_string(config).map_err(|source| EmbedError::Io {
        path: config.to_path_buf(),
        source,
    })?;
    let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| EmbedError::Config {
        path: config.to_path_buf(),
        message: format!("not JSON: {e}"),
    })?;
    match v.get("model_type").and_then(|t| t.as_str()) {
        Some("clip") => Ok(ModelFamily::Clip),
        Some("dinov2") => Ok(ModelFamily::Dinov2),
        other => Err(EmbedError::Config {
            path: config.to_path_buf(),
            message: format!(
                "model_type {other:?} is not supported (expected \"clip\" or \"dinov2\")"
            ),
        }),
    }
}

impl ModelFiles {
    /// The files of a checkpoint folder.
    pub fn from_dir(dir: &Path) -> Result<Self, EmbedError> {
        if !dir.is_dir() {
            return Err(EmbedError::Io {
                path: dir.to_path_buf(),
                source: std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    "not a folder: expected a checkpoint folder with config.json and weights",
                ),
            });
        }
        let config = dir.join("config.json");
        let family = family_of(&config)?;
        let weights = WEIGHT_NAMES
            .iter()
            .map(|n| dir.join(n))
            .find(|p| p.exists())
            .ok_or_else(|| EmbedError::Config {
                path: dir.to_path_buf(),
                message: format!("no weights: expected one of {}", WEIGHT_NAMES.join(", ")),
            })?;
        let pre = dir.join("preprocessor_config.json");
        let tok = dir.join("tokenizer.json");
        if family == ModelFamily::Clip && !tok.exists() {
            return Err(EmbedError::Config {
                path: dir.to_path_buf(),
                message: "no tokenizer.json: CLIP needs the checkpoint's tokenizer.json".into(),
            });
        }
        Ok(Self {
            model_id: dir.display().to_string(),
            family,
            config,
            preprocessor: pre.exists().then_some(pre),
            manifest_preprocess: None,
            tokenizer: tok.exists().then_some(tok),
            weights,
            expected_dim: None,
        })
    }

    /// The preprocessing: `preprocessor_config.json`, else the manifest's.
    pub fn preprocessor(&self) -> Result<Preprocessor, EmbedError> {
        if let Some(p) = &self.preprocessor {
            return Preprocessor::from_file(p);
        }
        if let Some(m) = &self.manifest_preprocess {
            return Preprocessor::from_manifest(m).map_err(|message| EmbedError::Config {
                path: self.config.clone(),
                message,
            });
        }
        Err(EmbedError::Config {
            path: self
                .config
                .parent()
                .unwrap_or(Path::new("."))
                .join("preprocessor_config.json"),
            message: "missing: the checkpoint needs a preprocessor_config.json".into(),
        })
    }

    /// Checks the loaded width against the manifest.
    pub fn check_dim(&self, dim: usize) -> Result<(), EmbedError> {
        match self.expected_dim {
            Some(d) if d != dim => Err(EmbedError::Config {
                path: self.config.clone(),
                message: format!(
                    "{}: the manifest says embeddings of width {d}, the checkpoint gives {dim}",
                    self.model_id
                ),
            }),
            _ => Ok(()),
        }
    }
}

fn is_commit(rev: &str) -> bool {
    rev.len() == 40 && rev.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The snapshot folder of `repo@rev` in a hub cache, if the revision is known there.
fn snapshot_dir(cache: &Path, repo: &str, rev: &str) -> Option<PathBuf> {
    let base = cache.join(format!("models--{}", repo.replace('/', "--")));
    if is_commit(rev) {
        let d = base.join("snapshots").join(rev);
        if d.is_dir() {
            return Some(d);
        }
    }
    let commit = std::fs::read_to_string(base.join("refs").join(rev)).ok()?;
    let d = base.join("snapshots").join(commit.trim());
    d.is_dir().then_some(d)
}

fn how_to(repo: &str, rev: &str, cache: &Path) -> String {
    format!(
        "fetch it on a machine with network (`huggingface-cli download {repo} --revision {rev}`) and copy the cache into {} (or point HF_HOME / HF_HUB_CACHE at a copy), or pass a local checkpoint folder (--model-dir, from_dir)",
        cache.display()
    )
}

/// Checks within a few seconds that the hub (or the proxy) accepts connections.
fn probe(endpoint: &str) -> Result<(), String> {
    let proxy = ["HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"]
        .iter()
        .find_map(|k| std::env::var(k).ok().filter(|v| !v.is_empty()));
    let target = proxy.as_deref().unwrap_or(endpoint);
    let without_scheme = target.split("://").last().unwrap_or(target);
    let hostport = without_scheme
        .split('/')
        .next()
        .unwrap_or(without_scheme)
        .rsplit('@')
        .next()
        .unwrap_or("")
        .to_string();
    let default_port = if target.starts_with("http://") {
        80
    } else {
        443
    };
    let addr = if hostport.contains(':') {
        hostport.clone()
    } else {
        format!("{hostport}:{default_port}")
    };
    let (tx, rx) = mpsc::channel();
    let a = addr.clone();
    std::thread::spawn(move || {
        let r = a
            .to_socket_addrs()
            .map_err(|e| e.to_string())
            .and_then(|mut it| {
                let sa = it.next().ok_or_else(|| "no address".to_string())?;
                TcpStream::connect_timeout(&sa, Duration::from_secs(4))
                    .map(|_| ())
                    .map_err(|e| e.to_string())
            });
        let _ = tx.send(r);
    });
    match rx.recv_timeout(Duration::from_secs(5)) {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(format!("cannot reach {addr}: {e}")),
        Err(_) => Err(format!("cannot reach {addr}: no answer within 5 s")),
    }
}

struct Fetcher<'a> {
    repo: &'a str,
    rev: String,
    opts: &'a HubOptions,
    cache: PathBuf,
    api: Option<hf_hub::api::sync::ApiRepo>,
    reachable: Option<Result<(), String>>,
}

impl Fetcher<'_> {
    fn label(&self) -> String {
        format!("{}@{}", self.repo, self.rev)
    }

    fn cached(&self, file: &str) -> Option<PathBuf> {
        let p = snapshot_dir(&self.cache, self.repo, &self.rev)?.join(file);
        p.exists().then_some(p)
    }

    /// The file from the cache or the network; `Ok(None)` when the hub says it does not
    /// exist (for optional files and alternatives).
    fn get(&mut self, file: &str) -> Result<Option<PathBuf>, EmbedError> {
        if let Some(p) = self.cached(file) {
            return Ok(Some(p));
        }
        if self.opts.offline {
            return Err(EmbedError::Download {
                model: self.label(),
                message: format!(
                    "{file} is not in the Hugging Face cache at {} and downloads are off (offline / HF_HUB_OFFLINE); {}",
                    self.cache.display(),
                    how_to(self.repo, &self.rev, &self.cache)
                ),
            });
        }
        let endpoint = self
            .opts
            .endpoint
            .clone()
            .unwrap_or_else(|| "https://huggingface.co".into());
        let reach = self
            .reachable
            .get_or_insert_with(|| probe(&endpoint))
            .clone();
        if let Err(e) = reach {
            return Err(EmbedError::Download {
                model: self.label(),
                message: format!(
                    "{file} is not in the Hugging Face cache at {} and the hub is unreachable ({e}); {}",
                    self.cache.display(),
                    how_to(self.repo, &self.rev, &self.cache)
                ),
            });
        }
        if self.api.is_none() {
            let api =
                hf_hub::api::sync::ApiBuilder::from_cache(hf_hub::Cache::new(self.cache.clone()))
                    .with_endpoint(endpoint)
                    .with_progress(self.opts.progress)
                    .build()
                    .map_err(|e| EmbedError::Download {
                        model: self.label(),
                        message: e.to_string(),
                    })?;
            self.api = Some(api.repo(hf_hub::Repo::with_revision(
                self.repo.to_string(),
                hf_hub::RepoType::Model,
                self.rev.clone(),
            )));
        }
        let api = self.api.as_ref().expect("set above");
        match api.download(file) {
            Ok(p) => Ok(Some(p)),
            Err(e) => {
                let msg = e.to_string();
                if msg.contains("404") || msg.contains("Not Found") || msg.contains("not found") {
                    Ok(None)
                } else {
                    Err(EmbedError::Download {
                        model: self.label(),
                        message: format!(
                            "downloading {file} failed: {msg}; {}",
                            how_to(self.repo, &self.rev, &self.cache)
                        ),
                    })
                }
            }
        }
    }

    /// The first of several files that exists (in the cache, else on the hub).
    fn first_of(&mut self, names: &[String]) -> Result<Option<PathBuf>, EmbedError> {
        for n in names {
            if let Some(p) = self.cached(n) {
                return Ok(Some(p));
            }
        }
        for n in names {
            if let Some(p) = self.get(n)? {
                return Ok(Some(p));
            }
        }
        Ok(None)
    }
}

/// Resolves the files of `repo` through the hub cache (downloading unless offline).
pub(crate) fn fetch(repo: &str, opts: &HubOptions) -> Result<ModelFiles, EmbedError> {
    let man = manifest::manifest(repo);
    let repo_id = man.map(|m| m.id.as_str()).unwrap_or(repo);
    if !repo_id.contains('/') {
        return Err(EmbedError::Download {
            model: repo.to_string(),
            message: "not a known model name nor a hub id of the form org/name".into(),
        });
    }
    let rev = opts
        .revision
        .clone()
        .or_else(|| man.map(|m| m.revision.clone()))
        .unwrap_or_else(|| "main".into());
    let mut f = Fetcher {
        repo: repo_id,
        rev,
        opts,
        cache: opts.resolved_cache_dir(),
        api: None,
        reachable: None,
    };
    let config_name = man
        .map(|m| m.files.config.clone())
        .unwrap_or_else(|| "config.json".into());
    let config = f.get(&config_name)?.ok_or_else(|| EmbedError::Download {
        model: f.label(),
        message: format!("the repository has no {config_name}"),
    })?;
    let family = family_of(&config)?;
    if let Some(m) = man {
        if m.family != family {
            return Err(EmbedError::Config {
                path: config,
                message: format!(
                    "the manifest of {} says {:?}, config.json says {family:?}",
                    m.id, m.family
                ),
            });
        }
    }
    let pre_name = man
        .and_then(|m| m.files.preprocessor.clone())
        .unwrap_or_else(|| "preprocessor_config.json".into());
    let preprocessor = f.get(&pre_name)?;
    let tokenizer = if family == ModelFamily::Clip {
        let name = man
            .and_then(|m| m.files.tokenizer.clone())
            .unwrap_or_else(|| "tokenizer.json".into());
        Some(f.get(&name)?.ok_or_else(|| EmbedError::Download {
            model: f.label(),
            message: format!("the repository has no {name}, which CLIP needs"),
        })?)
    } else {
        None
    };
    let weight_names: Vec<String> = man
        .map(|m| m.files.weights.clone())
        .unwrap_or_else(|| WEIGHT_NAMES.iter().map(|s| s.to_string()).collect());
    let weights = f
        .first_of(&weight_names)?
        .ok_or_else(|| EmbedError::Download {
            model: f.label(),
            message: format!("the repository has none of {}", weight_names.join(", ")),
        })?;
    // the commit actually used, from the snapshot folder name
    let commit = config
        .parent()
        .and_then(|p| p.file_name())
        .map(|s| s.to_string_lossy().into_owned())
        .filter(|s| is_commit(s))
        .unwrap_or_else(|| f.rev.clone());
    Ok(ModelFiles {
        model_id: format!("{repo_id}@{commit}"),
        family,
        config,
        preprocessor,
        manifest_preprocess: man.map(|m| m.preprocessing.clone()),
        tokenizer,
        weights,
        expected_dim: man.map(|m| m.dim),
    })
}
