//! The object store chunks live in: the local filesystem by default, or S3, GCS or
//! Azure by URL. Every read goes through a counting layer so `/metrics` (and the
//! pruning tests) can see exactly how many objects and bytes a query touched.
//!
//! Every write is bounded in time: the local filesystem has no timeout of its own, and
//! a hung PUT would otherwise hold up flushing, and so the WAL's truncation, for good.

use std::fmt;
use std::ops::Range;
use std::path::{Path as FsPath, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use futures::stream::BoxStream;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::prefix::PrefixStore;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    ObjectStoreExt, PutMultipartOptions, PutOptions, PutPayload, PutResult,
};

use super::meta::ChunkMeta;
use crate::metrics::Metrics;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("object store: {0}")]
    ObjectStore(#[from] object_store::Error),
    #[error("invalid object store url {url:?}: {reason}")]
    Url { url: String, reason: String },
    #[error("cannot sync {path}: {source}")]
    Sync {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("chunk metadata {path}: {reason}")]
    Meta { path: String, reason: String },
    #[error("writing {path} to the object store took longer than {after:?}")]
    Timeout { path: String, after: Duration },
    #[error("sync of {path} did not finish: {source}")]
    SyncTask {
        path: PathBuf,
        source: tokio::task::JoinError,
    },
}

/// How long a chunk upload may take unless configured otherwise: longer than the cloud
/// stores' own request timeouts and retries (30 s per request, retried for up to 3
/// minutes), so it only ever stops a store that has stopped answering.
pub const DEFAULT_UPLOAD_TIMEOUT: Duration = Duration::from_secs(300);

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// What the store holds: every chunk's metadata, and the data objects of chunks whose
/// metadata was never written (writes cut short long enough ago to be abandoned).
#[derive(Debug, Default)]
pub struct Listing {
    pub metas: Vec<ChunkMeta>,
    pub orphans: Vec<Path>,
}

/// Counts reads on the way through to the real store.
#[derive(Debug)]
struct Counting {
    inner: Arc<dyn ObjectStore>,
    metrics: Arc<Metrics>,
}

impl fmt::Display for Counting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Counting({})", self.inner)
    }
}

#[async_trait]
impl ObjectStore for Counting {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        self.inner.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(
        &self,
        location: &Path,
        options: GetOptions,
    ) -> object_store::Result<GetResult> {
        Metrics::add(&self.metrics.object_store_get_requests_total, 1);
        let result = self.inner.get_opts(location, options).await?;
        Metrics::add(
            &self.metrics.object_store_get_bytes_total,
            result.range.end - result.range.start,
        );
        Ok(result)
    }

    async fn get_ranges(
        &self,
        location: &Path,
        ranges: &[Range<u64>],
    ) -> object_store::Result<Vec<Bytes>> {
        Metrics::add(
            &self.metrics.object_store_get_requests_total,
            ranges.len() as u64,
        );
        let bytes: u64 = ranges.iter().map(|r| r.end - r.start).sum();
        Metrics::add(&self.metrics.object_store_get_bytes_total, bytes);
        self.inner.get_ranges(location, ranges).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<Path>>,
    ) -> BoxStream<'static, object_store::Result<Path>> {
        self.inner.delete_stream(locations)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.inner.list(prefix)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(
        &self,
        from: &Path,
        to: &Path,
        options: CopyOptions,
    ) -> object_store::Result<()> {
        self.inner.copy_opts(from, to, options).await
    }
}

/// The chunk store: an object store plus what durability it needs from us.
#[derive(Clone)]
pub struct ChunkStore {
    store: Arc<dyn ObjectStore>,
    /// For the local filesystem, the directory under which keys live: a put is made
    /// durable by syncing the file and its directories, which `object_store` does not.
    local_root: Option<PathBuf>,
    description: String,
    upload_timeout: Duration,
}

impl fmt::Debug for ChunkStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.description)
    }
}

impl ChunkStore {
    /// `url` is empty for `{data_dir}/chunks` on the local filesystem, or a
    /// `file://`, `s3://bucket/prefix`, `gs://…` or `az://…` URL; cloud credentials come
    /// from the usual environment variables.
    pub fn open(url: &str, data_dir: &FsPath, metrics: Arc<Metrics>) -> Result<Self> {
        let bad = |reason: String| StoreError::Url {
            url: url.to_owned(),
            reason,
        };
        let (inner, local_root, description): (Arc<dyn ObjectStore>, _, _) =
            if url.is_empty() || url.starts_with("file://") {
                let root = match url.strip_prefix("file://") {
                    Some(path) => PathBuf::from(path),
                    None => data_dir.join("chunks"),
                };
                std::fs::create_dir_all(&root).map_err(|e| bad(e.to_string()))?;
                let root = root.canonicalize().map_err(|e| bad(e.to_string()))?;
                let store = LocalFileSystem::new_with_prefix(&root)?;
                let description = format!("file://{}", root.display());
                (Arc::new(store), Some(root), description)
            } else {
                let parsed = url::Url::parse(url).map_err(|e| bad(e.to_string()))?;
                let prefix = Path::from(parsed.path().trim_start_matches('/'));
                let store: Arc<dyn ObjectStore> = match parsed.scheme() {
                    "s3" => Arc::new(
                        object_store::aws::AmazonS3Builder::from_env()
                            .with_url(url)
                            .build()?,
                    ),
                    "gs" => Arc::new(
                        object_store::gcp::GoogleCloudStorageBuilder::from_env()
                            .with_url(url)
                            .build()?,
                    ),
                    "az" | "abfs" | "abfss" => Arc::new(
                        object_store::azure::MicrosoftAzureBuilder::from_env()
                            .with_url(url)
                            .build()?,
                    ),
                    other => {
                        return Err(bad(format!(
                            "unsupported scheme {other:?}: use file, s3, gs or az"
                        )));
                    }
                };
                let store: Arc<dyn ObjectStore> = if prefix.as_ref().is_empty() {
                    store
                } else {
                    Arc::new(PrefixStore::new(store, prefix))
                };
                (store, None, url.to_owned())
            };
        Ok(Self {
            store: Arc::new(Counting { inner, metrics }),
            local_root,
            description,
            upload_timeout: DEFAULT_UPLOAD_TIMEOUT,
        })
    }

    /// Wraps any store (tests use an in-memory one).
    pub fn from_store(store: Arc<dyn ObjectStore>, metrics: Arc<Metrics>) -> Self {
        Self {
            store: Arc::new(Counting {
                inner: store,
                metrics,
            }),
            local_root: None,
            description: "custom".into(),
            upload_timeout: DEFAULT_UPLOAD_TIMEOUT,
        }
    }

    /// Bounds each `put`, and the `exists` check that follows a failed one.
    pub fn with_upload_timeout(mut self, timeout: Duration) -> Self {
        self.upload_timeout = timeout;
        self
    }

    pub fn object_store(&self) -> Arc<dyn ObjectStore> {
        Arc::clone(&self.store)
    }

    /// Writes an object and returns once it is durable, or fails once the upload
    /// timeout passes. A write that timed out may still land later (a local write
    /// runs on to its end; a remote store may have committed before its reply was lost).
    pub async fn put(&self, path: &Path, bytes: Bytes) -> Result<()> {
        tokio::time::timeout(self.upload_timeout, self.put_durable(path, bytes))
            .await
            .unwrap_or_else(|_| {
                Err(StoreError::Timeout {
                    path: path.to_string(),
                    after: self.upload_timeout,
                })
            })
    }

    async fn put_durable(&self, path: &Path, bytes: Bytes) -> Result<()> {
        self.store.put(path, PutPayload::from(bytes)).await?;
        self.sync_local(path).await
    }

    /// On the local filesystem, syncs a written object's file and its directories.
    async fn sync_local(&self, path: &Path) -> Result<()> {
        let Some(root) = &self.local_root else {
            return Ok(());
        };
        let file = root.join(path.as_ref());
        let root = root.clone();
        // Off the async workers, so the timeout can fire while a sync hangs.
        let synced = tokio::task::spawn_blocking(move || {
            let sync = |p: &FsPath| std::fs::File::open(p).and_then(|f| f.sync_all());
            let mut result = sync(&file);
            let mut dir = file.parent();
            while result.is_ok()
                && let Some(d) = dir
                && d.starts_with(&root)
            {
                result = sync(d);
                dir = d.parent();
            }
            result.map_err(|source| StoreError::Sync { path: file, source })
        });
        synced.await.map_err(|source| StoreError::SyncTask {
            path: PathBuf::from(path.as_ref()),
            source,
        })?
    }

    /// Writes a local file as an object, in parts, so a large chunk is never held in
    /// memory whole; durable on return, like `put`.
    pub async fn put_file(&self, path: &Path, file: &FsPath) -> Result<()> {
        tokio::time::timeout(self.upload_timeout, self.put_file_durable(path, file))
            .await
            .unwrap_or_else(|_| {
                Err(StoreError::Timeout {
                    path: path.to_string(),
                    after: self.upload_timeout,
                })
            })
    }

    async fn put_file_durable(&self, path: &Path, file: &FsPath) -> Result<()> {
        use tokio::io::AsyncReadExt;
        const PART_BYTES: usize = 8 << 20;
        let local = |source| StoreError::Sync {
            path: file.to_owned(),
            source,
        };
        let mut input = tokio::fs::File::open(file).await.map_err(local)?;
        let size = input.metadata().await.map_err(local)?.len();
        if size <= PART_BYTES as u64 {
            let mut bytes = Vec::with_capacity(size as usize);
            input.read_to_end(&mut bytes).await.map_err(local)?;
            return self.put_durable(path, bytes.into()).await;
        }
        let upload = self.store.put_multipart(path).await?;
        let mut writer = object_store::WriteMultipart::new_with_chunk_size(upload, PART_BYTES);
        let mut buffer = vec![0u8; PART_BYTES];
        loop {
            let n = match input.read(&mut buffer).await {
                Ok(0) => break,
                Ok(n) => n,
                Err(source) => {
                    let _ = writer.abort().await;
                    return Err(local(source));
                }
            };
            if let Err(e) = writer.wait_for_capacity(2).await {
                let _ = writer.abort().await;
                return Err(e.into());
            }
            writer.write(&buffer[..n]);
        }
        if let Err(e) = writer.wait_for_capacity(0).await {
            let _ = writer.abort().await;
            return Err(e.into());
        }
        // `finish` aborts the upload itself when completing it fails.
        writer.finish().await?;
        self.sync_local(path).await
    }

    /// Deletes an object; one already gone counts as deleted.
    pub async fn delete(&self, path: &Path) -> Result<()> {
        match tokio::time::timeout(self.upload_timeout, self.store.delete(path)).await {
            Ok(Ok(())) | Ok(Err(object_store::Error::NotFound { .. })) => Ok(()),
            Ok(Err(e)) => Err(e.into()),
            Err(_) => Err(StoreError::Timeout {
                path: path.to_string(),
                after: self.upload_timeout,
            }),
        }
    }

    /// Whether an object is there (a failed or timed-out HEAD counts as not there).
    pub async fn exists(&self, path: &Path) -> bool {
        matches!(
            tokio::time::timeout(self.upload_timeout, self.store.head(path)).await,
            Ok(Ok(_))
        )
    }

    /// Reads every chunk's metadata. Chunks without metadata are unfinished writes and
    /// are skipped (those older than `orphan_age` are listed, to be deleted); unreadable
    /// metadata is an error, never silently dropped.
    pub async fn load_metas(&self, orphan_age: Duration) -> Result<Listing> {
        let mut paths = Vec::new();
        let mut data: Vec<ObjectMeta> = Vec::new();
        let mut listing = self.store.list(None);
        while let Some(item) = listing.next().await {
            let item = item?;
            let name = item.location.as_ref();
            if name.ends_with(".meta") {
                paths.push(item.location);
            } else if name.ends_with(".parquet") {
                data.push(item);
            } else if name.ends_with(".meta.json") {
                return Err(StoreError::Meta {
                    path: name.to_owned(),
                    reason: "metadata format 1, written by an earlier version of Threadline, \
                             is not readable by this one"
                        .into(),
                });
            }
        }
        let committed: std::collections::HashSet<&str> = paths
            .iter()
            .filter_map(|p| p.as_ref().strip_suffix(".meta"))
            .collect();
        let cutoff = chrono::Utc::now() - orphan_age;
        let orphans = data
            .into_iter()
            .filter(|o| {
                let stem = o.location.as_ref().trim_end_matches(".parquet");
                !committed.contains(stem) && o.last_modified < cutoff
            })
            .map(|o| o.location)
            .collect();
        let mut metas = Vec::with_capacity(paths.len());
        for path in paths {
            let bytes = self.store.get(&path).await?.bytes().await?;
            let meta = ChunkMeta::decode(&bytes).map_err(|reason| StoreError::Meta {
                path: path.to_string(),
                reason,
            })?;
            if meta.key().meta_path() != path {
                return Err(StoreError::Meta {
                    path: path.to_string(),
                    reason: format!("names a different chunk ({})", meta.key().meta_path()),
                });
            }
            metas.push(meta);
        }
        Ok(Listing { metas, orphans })
    }
}
