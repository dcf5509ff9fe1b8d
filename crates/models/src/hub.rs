//! Finding a model's files: in a local folder, in the Hugging Face cache, or by download.
//!
//! [`ModelRepo`] hides where the files are: [`ModelRepo::dir`] reads a folder laid out like
//! a hub repository, [`ModelRepo::hub`] reads the Hugging Face cache through hf-hub's own
//! cache API ([`hf_hub::Cache`]) and downloads what is missing unless offline.
//!
//! One case hf-hub's cache lookup misses is handled here: a revision given as a commit hash
//! whose snapshot was downloaded by the Python `huggingface_hub`, which does not write
//! `refs/<hash>` (hf-hub's `CacheRepo::get` reads the commit from `refs/<revision>` only).
//! The pinned revisions of reelsmith's model manifests are commit hashes, so such a cache
//! must work; the snapshot folder is then taken from hf-hub's `pointer_path`.

use std::net::{TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Mutex, OnceLock};
use std::time::Duration;

use crate::ModelError;

/// How [`ModelRepo::hub`] reaches the hub.
///
/// Defaults: revision `main`, the standard cache (`$HF_HUB_CACHE`, else `$HF_HOME/hub`,
/// else `~/.cache/huggingface/hub`), downloads allowed unless `HF_HUB_OFFLINE=1`, the
/// address in `$HF_ENDPOINT` (else `https://huggingface.co`), a progress bar.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct HubOptions {
    /// Branch, tag or commit; `None` for the caller's default (`main` for [`ModelRepo`]).
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

    /// Sets the hub address (a mirror or a proxy).
    pub fn endpoint(mut self, url: impl Into<String>) -> Self {
        self.endpoint = Some(url.into());
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

/// Whether `rev` is a full commit hash (40 hex digits).
pub fn is_commit(rev: &str) -> bool {
    rev.len() == 40 && rev.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The files of one model, in a local folder or in a hub repository.
///
/// File names are paths inside the repository (`config.json`,
/// `transformer/diffusion_pytorch_model.safetensors.index.json`).
///
/// ```
/// use reelsmith_models::ModelRepo;
/// let dir = tempfile::tempdir()?;
/// std::fs::write(dir.path().join("config.json"), "{}")?;
/// let repo = ModelRepo::dir(dir.path())?;
/// assert!(repo.get("config.json")?.ends_with("config.json"));
/// assert!(repo.get_optional("tokenizer.json")?.is_none());
/// let err = repo.get("model.safetensors").unwrap_err().to_string();
/// assert!(err.contains("model.safetensors"), "{err}");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct ModelRepo {
    kind: Kind,
}

#[derive(Debug)]
enum Kind {
    Dir(PathBuf),
    Hub(Box<HubRepo>),
}

impl ModelRepo {
    /// A local folder laid out like a hub repository.
    pub fn dir(dir: impl AsRef<Path>) -> Result<Self, ModelError> {
        let dir = dir.as_ref();
        if !dir.is_dir() {
            return Err(ModelError::not_found(
                dir,
                "not a folder: expected a checkpoint folder (config.json and weights)",
            ));
        }
        Ok(Self {
            kind: Kind::Dir(dir.to_path_buf()),
        })
    }

    /// Repository `repo` (`org/name`) on the Hugging Face hub at `opts.revision` (default
    /// `main`), read from the cache and downloaded where missing unless `opts.offline`.
    /// Nothing is fetched until a file is asked for.
    pub fn hub(repo: &str, opts: &HubOptions) -> Result<Self, ModelError> {
        if !repo.contains('/') || repo.starts_with('/') || repo.ends_with('/') {
            return Err(ModelError::Download {
                model: repo.to_string(),
                message: "not a hub id of the form org/name".into(),
            });
        }
        let rev = opts.revision.clone().unwrap_or_else(|| "main".into());
        Ok(Self {
            kind: Kind::Hub(Box::new(HubRepo {
                repo: repo.to_string(),
                rev,
                opts: opts.clone(),
                cache: hf_hub::Cache::new(opts.resolved_cache_dir()),
                api: Mutex::new(None),
                reachable: OnceLock::new(),
            })),
        })
    }

    /// The folder, for a local repository.
    pub fn local_dir(&self) -> Option<&Path> {
        match &self.kind {
            Kind::Dir(d) => Some(d),
            Kind::Hub(_) => None,
        }
    }

    /// A stable identifier: the folder's path, or `org/name@<commit>` (the revision as
    /// given where the cache does not know its commit yet).
    pub fn id(&self) -> String {
        match &self.kind {
            Kind::Dir(d) => d.display().to_string(),
            Kind::Hub(h) => format!("{}@{}", h.repo, h.commit().unwrap_or(h.rev.clone())),
        }
    }

    /// `org/name@revision` for a hub repository, the folder for a local one (for messages).
    pub fn label(&self) -> String {
        match &self.kind {
            Kind::Dir(d) => d.display().to_string(),
            Kind::Hub(h) => h.label(),
        }
    }

    /// The file, which must exist: [`ModelError::Io`] naming it for a folder,
    /// [`ModelError::Download`] with advice for the hub.
    pub fn get(&self, file: &str) -> Result<PathBuf, ModelError> {
        match self.get_optional(file)? {
            Some(p) => Ok(p),
            None => Err(match &self.kind {
                Kind::Dir(d) => ModelError::not_found(
                    d.join(file),
                    "missing from the checkpoint folder; copy it from the model's repository",
                ),
                Kind::Hub(h) => ModelError::Download {
                    model: h.label(),
                    message: format!("the repository has no {file}"),
                },
            }),
        }
    }

    /// The file, or `None` where the repository does not have it. Fails only where the
    /// hub cannot be asked (offline and not cached, network errors).
    pub fn get_optional(&self, file: &str) -> Result<Option<PathBuf>, ModelError> {
        match &self.kind {
            Kind::Dir(d) => {
                let p = d.join(file);
                Ok(p.is_file().then_some(p))
            }
            Kind::Hub(h) => h.get(file),
        }
    }

    /// The first of several alternatives that exists (all are looked for in the cache
    /// before any is downloaded).
    pub fn first_of(&self, names: &[&str]) -> Result<Option<PathBuf>, ModelError> {
        Ok(self.first_of_named(names)?.map(|(_, p)| p))
    }

    fn first_of_named<'n>(
        &self,
        names: &[&'n str],
    ) -> Result<Option<(&'n str, PathBuf)>, ModelError> {
        if let Kind::Hub(h) = &self.kind {
            for n in names {
                if let Some(p) = h.cached(n) {
                    return Ok(Some((n, p)));
                }
            }
        }
        for n in names {
            if let Some(p) = self.get_optional(n)? {
                return Ok(Some((n, p)));
            }
        }
        Ok(None)
    }

    /// The weights: the first of `names` present (such as
    /// [`ModelRepo::DEFAULT_WEIGHTS`]); for a sharded `*.index.json` every shard it lists
    /// is fetched too (shards live in the index's folder). The returned path is what
    /// [`crate::Checkpoint::open`] takes.
    pub fn weights(&self, names: &[&str]) -> Result<PathBuf, ModelError> {
        let (name, path) = self
            .first_of_named(names)?
            .ok_or_else(|| match &self.kind {
                Kind::Dir(d) => ModelError::config(
                    d,
                    format!("no weights: expected one of {}", names.join(", ")),
                ),
                Kind::Hub(h) => ModelError::Download {
                    model: h.label(),
                    message: format!("the repository has none of {}", names.join(", ")),
                },
            })?;
        if name.ends_with(".index.json") {
            let folder = match name.rfind('/') {
                Some(i) => &name[..=i],
                None => "",
            };
            for shard in crate::weights::shard_names(&path)? {
                self.get(&format!("{folder}{shard}"))?;
            }
        }
        Ok(path)
    }

    /// Weight file names of the Hugging Face layouts, in order of preference.
    pub const DEFAULT_WEIGHTS: &'static [&'static str] = &[
        "model.safetensors",
        "model.safetensors.index.json",
        "pytorch_model.bin",
        "pytorch_model.bin.index.json",
    ];
}

struct HubRepo {
    repo: String,
    rev: String,
    opts: HubOptions,
    cache: hf_hub::Cache,
    api: Mutex<Option<hf_hub::api::sync::ApiRepo>>,
    reachable: OnceLock<Result<(), String>>,
}

impl std::fmt::Debug for HubRepo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HubRepo")
            .field("repo", &self.repo)
            .field("rev", &self.rev)
            .field("cache", self.cache.path())
            .field("offline", &self.opts.offline)
            .finish_non_exhaustive()
    }
}

impl HubRepo {
    fn label(&self) -> String {
        format!("{}@{}", self.repo, self.rev)
    }

    fn hf_repo(&self) -> hf_hub::Repo {
        hf_hub::Repo::with_revision(self.repo.clone(), hf_hub::RepoType::Model, self.rev.clone())
    }

    fn cache_repo(&self) -> hf_hub::CacheRepo {
        self.cache.repo(self.hf_repo())
    }

    /// The commit the revision points at in the cache, if known.
    fn commit(&self) -> Option<String> {
        if is_commit(&self.rev) {
            return Some(self.rev.clone());
        }
        let refs = self
            .cache
            .path()
            .join(self.hf_repo().folder_name())
            .join("refs")
            .join(&self.rev);
        let c = std::fs::read_to_string(refs).ok()?;
        let c = c.trim();
        is_commit(c).then(|| c.to_string())
    }

    /// The file from the cache (hf-hub's lookup through `refs/<revision>`, else the snapshot
    /// of a commit-hash revision).
    fn cached(&self, file: &str) -> Option<PathBuf> {
        let repo = self.cache_repo();
        if let Some(p) = repo.get(file) {
            return Some(p);
        }
        let commit = self.commit()?;
        let p = repo.pointer_path(&commit).join(file);
        p.exists().then_some(p)
    }

    fn how_to(&self) -> String {
        format!(
            "fetch it on a machine with network (`huggingface-cli download {} --revision {}`) and copy the cache into {} (or point HF_HOME / HF_HUB_CACHE at a copy), or load a local checkpoint folder instead",
            self.repo,
            self.rev,
            self.cache.path().display()
        )
    }

    fn get(&self, file: &str) -> Result<Option<PathBuf>, ModelError> {
        if let Some(p) = self.cached(file) {
            return Ok(Some(p));
        }
        let cache = self.cache.path().display().to_string();
        if self.opts.offline {
            return Err(ModelError::Download {
                model: self.label(),
                message: format!(
                    "{file} is not in the Hugging Face cache at {cache} and downloads are off (offline / HF_HUB_OFFLINE); {}",
                    self.how_to()
                ),
            });
        }
        let endpoint = self
            .opts
            .endpoint
            .clone()
            .unwrap_or_else(|| "https://huggingface.co".into());
        if let Err(e) = self.reachable.get_or_init(|| probe(&endpoint)) {
            return Err(ModelError::Download {
                model: self.label(),
                message: format!(
                    "{file} is not in the Hugging Face cache at {cache} and the hub is unreachable ({e}); {}",
                    self.how_to()
                ),
            });
        }
        let mut api = self.api.lock().unwrap_or_else(|p| p.into_inner());
        if api.is_none() {
            let built = hf_hub::api::sync::ApiBuilder::from_cache(self.cache.clone())
                .with_endpoint(endpoint)
                .with_progress(self.opts.progress)
                .build()
                .map_err(|e| ModelError::Download {
                    model: self.label(),
                    message: e.to_string(),
                })?;
            *api = Some(built.repo(hf_hub::Repo::with_revision(
                self.repo.clone(),
                hf_hub::RepoType::Model,
                self.rev.clone(),
            )));
        }
        let Some(api) = api.as_ref() else {
            unreachable!("set above")
        };
        match api.get(file) {
            Ok(p) => Ok(Some(p)),
            Err(e) => {
                let msg = e.to_string();
                if msg.contains("404") || msg.contains("Not Found") || msg.contains("not found") {
                    Ok(None)
                } else {
                    Err(ModelError::Download {
                        model: self.label(),
                        message: format!("downloading {file} failed: {msg}; {}", self.how_to()),
                    })
                }
            }
        }
    }
}

/// Checks within a few seconds that the hub (or the proxy) accepts connections, so that an
/// unreachable hub fails fast instead of after the HTTP client's long timeouts.
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
