//! A prefix of an object store, with blocking calls for the operators.

use std::fmt;
use std::io;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use futures_util::TryStreamExt;
use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::azure::{AzureConfigKey, MicrosoftAzureBuilder};
use object_store::gcp::{GoogleCloudStorageBuilder, GoogleConfigKey};
use object_store::multipart::PartId;
use object_store::path::Path as Key;
use object_store::{BackoffConfig, ObjectStoreExt, PutMode, PutPayload, RetryConfig};

use super::{block_on, io_error, remember, Bucket};

/// The size of the parts of a multipart upload but the last: 8 MiB, above
/// the 5 MiB stores require.
pub const PART_BYTES: usize = 8 << 20;

/// How long a call is retried before it fails: a store unreachable for
/// this long stops the pipeline with an error naming the location.
pub const RETRY_TIMEOUT: Duration = Duration::from_secs(300);

/// How long the check at the start of a run retries before it reports the
/// location unreachable.
const CHECK_TIMEOUT: Duration = Duration::from_secs(10);

/// Retries of failed calls (connection errors, throttling, server errors):
/// back-off from 100 ms up to 10 s, with jitter, for up to `timeout`. The
/// calls Weir makes are all safe to repeat.
fn retry(timeout: Duration) -> RetryConfig {
    RetryConfig {
        backoff: BackoffConfig {
            init_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(10),
            base: 3.0,
        },
        // The timeout is the bound, not the count.
        max_retries: usize::MAX,
        retry_timeout: timeout,
    }
}

/// A prefix of a bucket (`s3://bucket/prefix`) and a client for it.
#[derive(Clone)]
pub struct ObjectLocation {
    /// The URL, without a trailing `/`.
    url: String,
    store: Arc<dyn Bucket>,
    /// The same client with a short retry timeout, for the check at start.
    quick: Arc<dyn Bucket>,
    prefix: Key,
    /// The options the client was built with, to tell two clients apart.
    options: Vec<(String, String)>,
}

/// A multipart upload that was started and not completed: what it takes to
/// complete it later, from another process if need be.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub struct Upload {
    /// The upload's id, from the store.
    pub id: String,
    /// The ids of its parts, in order.
    pub parts: Vec<String>,
}

impl ObjectLocation {
    /// A client for `url` (`s3://`, `s3a://`, `gs://`, `az://`, `azure://`,
    /// `abfs://`, `abfss://`), configured from the store's environment
    /// variables and then `options` (keys as the `object_store` crate
    /// names them: `aws_endpoint`, `aws_region`, `aws_allow_http`,
    /// `google_service_account`, `azure_storage_account_name`, ...).
    pub fn open(url: &str, options: &[(String, String)]) -> Result<ObjectLocation, String> {
        let parsed = url::Url::parse(url).map_err(|e| format!("{url:?} is not a URL: {e}"))?;
        if parsed.host_str().is_none_or(str::is_empty) {
            return Err(format!("{url:?} names no bucket"));
        }
        let store = build(&parsed, url, options, retry(RETRY_TIMEOUT))?;
        let quick = build(&parsed, url, options, retry(CHECK_TIMEOUT))?;
        let prefix = Key::from_url_path(parsed.path()).map_err(|e| format!("{url}: {e}"))?;
        let location = ObjectLocation {
            url: url.trim_end_matches('/').to_owned(),
            store,
            quick,
            prefix,
            options: options.to_vec(),
        };
        remember(&location);
        Ok(location)
    }

    /// Checks that `key` is an option of one of the object stores: S3
    /// (`aws_*`), Google Cloud Storage (`google_*`) or Azure (`azure_*`).
    pub fn check_option(key: &str) -> Result<(), String> {
        let known = AmazonS3ConfigKey::from_str(key).is_ok()
            || GoogleConfigKey::from_str(key).is_ok()
            || AzureConfigKey::from_str(key).is_ok();
        known.then_some(()).ok_or_else(|| {
            format!(
                "`{key}` is not an option of S3, Google Cloud Storage or Azure locations (such \
                 as aws_endpoint, aws_region, google_service_account, azure_storage_account_name)"
            )
        })
    }

    /// A location on any store, under `url` in messages: for tests, with
    /// `object_store`'s in-memory store.
    pub fn with_store(url: &str, store: Arc<dyn Bucket>) -> ObjectLocation {
        let prefix = url
            .split_once("://")
            .and_then(|(_, rest)| rest.split_once('/'))
            .map_or(Key::default(), |(_, path)| Key::from(path));
        let location = ObjectLocation {
            url: url.trim_end_matches('/').to_owned(),
            quick: Arc::clone(&store),
            store,
            prefix,
            options: Vec::new(),
        };
        remember(&location);
        location
    }

    /// The URL, without a trailing `/`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The location of `relative` (`/`-separated) below this one.
    pub fn join(&self, relative: &str) -> ObjectLocation {
        let joined = ObjectLocation {
            url: format!("{}/{}", self.url, relative.trim_matches('/')),
            store: Arc::clone(&self.store),
            quick: Arc::clone(&self.quick),
            prefix: self.key(relative),
            options: self.options.clone(),
        };
        remember(&joined);
        joined
    }

    /// The key of `relative` below the prefix.
    fn key(&self, relative: &str) -> Key {
        relative
            .split('/')
            .filter(|p| !p.is_empty())
            .fold(self.prefix.clone(), |key, part| key.clone().join(part))
    }

    /// The URL of `relative`, for messages.
    pub fn url_of(&self, relative: &str) -> String {
        format!("{}/{relative}", self.url)
    }

    /// Writes `bytes` under `relative`, replacing any object there.
    pub fn put(&self, relative: &str, bytes: Vec<u8>) -> io::Result<()> {
        let (store, key) = (Arc::clone(&self.store), self.key(relative));
        block_on(async move { store.put(&key, PutPayload::from(bytes)).await })
            .map(drop)
            .map_err(|e| io_error(self.url_of(relative), e))
    }

    /// Writes `bytes` under `relative` unless an object is there already,
    /// with the store's conditional write: `Ok(false)` if one was.
    pub fn put_new(&self, relative: &str, bytes: Vec<u8>) -> io::Result<bool> {
        let (store, key) = (Arc::clone(&self.store), self.key(relative));
        match block_on(async move {
            store
                .put_opts(&key, PutPayload::from(bytes), PutMode::Create.into())
                .await
        }) {
            Ok(_) => Ok(true),
            Err(object_store::Error::AlreadyExists { .. })
            | Err(object_store::Error::Precondition { .. }) => Ok(false),
            Err(e) => Err(io_error(self.url_of(relative), e)),
        }
    }

    /// The object under `relative`.
    pub fn get(&self, relative: &str) -> io::Result<Vec<u8>> {
        let (store, key) = (Arc::clone(&self.store), self.key(relative));
        block_on(async move { store.get(&key).await?.bytes().await })
            .map(|b| b.to_vec())
            .map_err(|e| io_error(self.url_of(relative), e))
    }

    /// Whether an object is under `relative`.
    pub fn exists(&self, relative: &str) -> io::Result<bool> {
        let (store, key) = (Arc::clone(&self.store), self.key(relative));
        match block_on(async move { store.head(&key).await }) {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(io_error(self.url_of(relative), e)),
        }
    }

    /// Deletes the object under `relative`; a missing one is not an error.
    pub fn delete(&self, relative: &str) -> io::Result<()> {
        let (store, key) = (Arc::clone(&self.store), self.key(relative));
        match block_on(async move { store.delete(&key).await }) {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(io_error(self.url_of(relative), e)),
        }
    }

    /// Every object below this location, as (relative name, size), sorted.
    pub fn list(&self) -> io::Result<Vec<(String, u64)>> {
        let (store, prefix) = (Arc::clone(&self.store), self.prefix.clone());
        let listed = block_on(async move {
            let prefix = (!prefix.as_ref().is_empty()).then_some(prefix);
            store.list(prefix.as_ref()).try_collect::<Vec<_>>().await
        })
        .map_err(|e| io_error(&self.url, e))?;
        let mut names: Vec<(String, u64)> = listed
            .into_iter()
            .filter_map(|meta| {
                let parts: Vec<_> = meta.location.prefix_match(&self.prefix)?.collect();
                let name = parts
                    .iter()
                    .map(|p| p.as_ref())
                    .collect::<Vec<_>>()
                    .join("/");
                Some((name, meta.size))
            })
            .collect();
        names.sort();
        Ok(names)
    }

    /// Uploads `bytes` as a multipart upload to `relative`, in parts of
    /// [`PART_BYTES`], and leaves it open: nothing is visible under
    /// `relative` until [`ObjectLocation::complete`].
    pub fn upload(&self, relative: &str, bytes: Vec<u8>) -> io::Result<Upload> {
        let (store, key) = (Arc::clone(&self.store), self.key(relative));
        block_on(async move {
            let id = store.create_multipart(&key).await?;
            let bytes = bytes::Bytes::from(bytes);
            let mut parts = Vec::new();
            let chunks = bytes.len().div_ceil(PART_BYTES).max(1);
            for index in 0..chunks {
                let start = index * PART_BYTES;
                let end = (start + PART_BYTES).min(bytes.len());
                let part = store
                    .put_part(&key, &id, index, PutPayload::from(bytes.slice(start..end)))
                    .await;
                match part {
                    Ok(part) => parts.push(part.content_id),
                    Err(e) => {
                        let _ = store.abort_multipart(&key, &id).await;
                        return Err(e);
                    }
                }
            }
            Ok(Upload { id, parts })
        })
        .map_err(|e| io_error(self.url_of(relative), e))
    }

    /// Completes `upload` of `relative`: the object becomes visible there.
    /// Completing an upload completed before is not an error.
    pub fn complete(&self, relative: &str, upload: &Upload) -> io::Result<()> {
        let (store, key) = (Arc::clone(&self.store), self.key(relative));
        let (id, parts) = (upload.id.clone(), upload.parts.clone());
        let done = block_on(async move {
            let parts = parts.into_iter().map(|content_id| PartId { content_id });
            store.complete_multipart(&key, &id, parts.collect()).await
        });
        match done {
            Ok(_) => Ok(()),
            // Completed before (by a run that crashed before it could say so).
            Err(_) if self.exists(relative)? => Ok(()),
            Err(e) => Err(io_error(self.url_of(relative), e)),
        }
    }

    /// Aborts the upload `id` of `relative`: its parts are deleted and
    /// nothing becomes visible. An upload that is gone is not an error.
    pub fn abort(&self, relative: &str, id: &str) -> io::Result<()> {
        let (store, key, id) = (Arc::clone(&self.store), self.key(relative), id.to_owned());
        match block_on(async move { store.abort_multipart(&key, &id).await }) {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(io_error(self.url_of(relative), e)),
        }
    }

    /// Writes and deletes a probe object, retrying for 10 s at most; the
    /// error names the location.
    pub fn check_writable(&self) -> Result<(), String> {
        let probe = self.key(&format!(
            "_weir_probe-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos())
        ));
        let store = Arc::clone(&self.quick);
        block_on(async move {
            store.put(&probe, PutPayload::from_static(b"weir")).await?;
            store.delete(&probe).await
        })
        .map_err(|e| format!("{} is not writable: {e}", self.url))
    }
}

/// A client for `url` (parsed: `parsed`) with `options` and `retry`.
fn build(
    parsed: &url::Url,
    url: &str,
    options: &[(String, String)],
    retry: RetryConfig,
) -> Result<Arc<dyn Bucket>, String> {
    let store: Arc<dyn Bucket> = match parsed.scheme() {
        "s3" | "s3a" => {
            let mut builder = AmazonS3Builder::from_env().with_url(url).with_retry(retry);
            // Options of other stores are for other locations.
            for (key, value) in options {
                if let Ok(key) = AmazonS3ConfigKey::from_str(key) {
                    builder = builder.with_config(key, value);
                }
            }
            Arc::new(builder.build().map_err(|e| format!("{url}: {e}"))?)
        }
        "gs" => {
            let mut builder = GoogleCloudStorageBuilder::from_env()
                .with_url(url)
                .with_retry(retry);
            for (key, value) in options {
                if let Ok(key) = GoogleConfigKey::from_str(key) {
                    builder = builder.with_config(key, value);
                }
            }
            Arc::new(builder.build().map_err(|e| format!("{url}: {e}"))?)
        }
        _ => {
            let mut builder = MicrosoftAzureBuilder::from_env()
                .with_url(url)
                .with_retry(retry);
            for (key, value) in options {
                if let Ok(key) = AzureConfigKey::from_str(key) {
                    builder = builder.with_config(key, value);
                }
            }
            Arc::new(builder.build().map_err(|e| format!("{url}: {e}"))?)
        }
    };
    Ok(store)
}

impl PartialEq for ObjectLocation {
    fn eq(&self, other: &Self) -> bool {
        self.url == other.url && self.options == other.options
    }
}

impl fmt::Display for ObjectLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.url)
    }
}

impl fmt::Debug for ObjectLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("ObjectLocation").field(&self.url).finish()
    }
}
