//! Shared harness for integration tests that need a real Kafka-protocol broker.
//!
//! [`Broker::start`] runs [tansu](https://crates.io/crates/tansu) 0.6.0 as a
//! child process on a free loopback port, with SQLite storage in its own
//! temporary directory, waits until it answers Kafka metadata requests and
//! kills it on drop. Each test should start its own broker (startup takes well
//! under a second) and use [`unique_topic`] for topic names.
//!
//! The binary comes from `$WEIR_TANSU`, else `~/.cache/weir/tansu-0.6.0/bin/tansu`.
//! `bash scripts/test.sh` installs it and sets `WEIR_TANSU`; when it is missing
//! the tests fail loudly rather than skip. `WEIR_TANSU_LOG` sets tansu's
//! `RUST_LOG` (default `warn`); its output is in [`Broker::log`].
//!
//! Known tansu 0.6.0 behaviour (checked against this harness): no
//! transactions; idempotent producers, gzip batches, consumer-group
//! subscribe/commit/resume and `offsets_for_times` work, but a timestamp later
//! than every record gives offset 0 (Kafka gives -1, "end"). rdkafka pitfall:
//! drop every `TopicPartitionList` a consumer returned (`committed()` etc.)
//! before the consumer itself, or its drop blocks forever.
//!
//! Include with `mod support;` from a file in `tests/`.
#![allow(dead_code)]

pub mod proxy;

use std::fs::{self, File};
use std::future::Future;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};
use std::thread::{self, Thread};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::{ClientContext, DefaultClientContext};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{DeliveryResult, Message};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer, ProducerContext};
use rdkafka::{Offset, TopicPartitionList};
use tempfile::TempDir;

/// `sh -c` script: run `$0 "$@"` (tansu); when stdin reaches EOF, kill it
/// and remove its working directory (a `weir-tansu-*` temp dir).
const WATCHDOG: &str = r#"exec 3<&0
"$0" "$@" </dev/null 3<&- &
pid=$!
(cat <&3 >/dev/null; kill "$pid" 2>/dev/null
 while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
 case "$PWD" in */weir-tansu-*) rm -rf "$PWD";; esac) &
exec 3<&-
wait "$pid""#;

/// How long to wait for the broker to come up, and for produce/consume calls.
pub const TIMEOUT: Duration = Duration::from_secs(30);

/// One record to [`Broker::produce`]: `(key, payload, timestamp_ms, partition)`.
/// `None` partition lets the client's partitioner pick (by key hash).
pub type Record<'a> = (Option<&'a [u8]>, &'a [u8], Option<i64>, Option<i32>);

/// A record read back by [`Broker::consume_all`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConsumedRecord {
    /// Partition the record was read from.
    pub partition: i32,
    /// Offset within the partition.
    pub offset: i64,
    /// Record key, if any.
    pub key: Option<Vec<u8>>,
    /// Record value (empty for a null value).
    pub payload: Vec<u8>,
    /// Record timestamp in ms since the epoch, if the broker returned one.
    pub timestamp: Option<i64>,
}

/// Where a record landed: `(partition, offset)`, or the delivery error.
type DeliveryReport = Result<(i32, i64), String>;

/// Producer context collecting each record's delivery report by input index.
struct Deliveries(Mutex<Vec<Option<DeliveryReport>>>);

impl ClientContext for Deliveries {}

impl ProducerContext for Deliveries {
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, index: usize) {
        self.0.lock().unwrap()[index] = Some(match result {
            Ok(msg) => Ok((msg.partition(), msg.offset())),
            Err((e, _)) => Err(e.to_string()),
        });
    }
}

/// A tansu broker child process, killed (and its directory removed) on drop.
pub struct Broker {
    child: Child,
    port: u16,
    /// The port clients are told to use (a proxy's, or `port`).
    advertised: u16,
    log_path: PathBuf,
    startup: Duration,
    // Dropped after `child` is killed (see `Drop`).
    _dir: TempDir,
}

/// Returns a topic name unique across tests and test processes.
pub fn unique_topic(prefix: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("{prefix}-{}-{n}-{nanos}", std::process::id())
}

/// Path of the tansu binary; panics with instructions if there is none.
pub fn tansu_path() -> PathBuf {
    if let Some(path) = std::env::var_os("WEIR_TANSU") {
        let path = PathBuf::from(path);
        assert!(
            path.is_file(),
            "WEIR_TANSU={} is not a file; run `bash scripts/test.sh` to install tansu",
            path.display()
        );
        return path;
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_default();
    let cached = home.join(".cache/weir/tansu-0.6.0/bin/tansu");
    assert!(
        cached.is_file(),
        "tansu broker not found (WEIR_TANSU unset, {} missing): \
         run the tests with `bash scripts/test.sh`, which installs it",
        cached.display()
    );
    cached
}

impl Broker {
    /// Starts a fresh broker and waits until it serves Kafka metadata requests.
    pub fn start() -> Broker {
        Broker::start_advertising(None)
    }

    /// Starts a broker that clients reach through `proxy` only: it
    /// advertises the proxy's address.
    pub fn start_behind(proxy: &proxy::Proxy) -> Broker {
        Broker::start_advertising(Some(proxy))
    }

    fn start_advertising(proxy: Option<&proxy::Proxy>) -> Broker {
        let tansu = tansu_path();
        let mut attempt = 0;
        loop {
            attempt += 1;
            let started = Instant::now();
            let mut broker = Self::spawn(&tansu, proxy);
            match broker.wait_ready(started) {
                Ok(()) => return broker,
                // A lost race for the port: another process took it in between.
                Err(log) if attempt < 3 && log.contains("in use") => continue,
                Err(log) => panic!(
                    "tansu broker on 127.0.0.1:{} did not become ready within {TIMEOUT:?}; \
                     its log:\n{log}",
                    broker.port
                ),
            }
        }
    }

    fn spawn(tansu: &PathBuf, proxy: Option<&proxy::Proxy>) -> Broker {
        let dir = tempfile::Builder::new()
            .prefix("weir-tansu-")
            .tempdir()
            .expect("create tansu temp dir");
        // Port 0 lets the OS pick a free port; tansu then binds it.
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("find a free port")
            .port();
        let log_path = dir.path().join("tansu.log");
        let log = File::create(&log_path).expect("create tansu log");
        let url = format!("tcp://127.0.0.1:{port}");
        let advertised = proxy.map_or(port, |p| {
            p.set_upstream(port);
            p.port()
        });
        let advertised_url = format!("tcp://127.0.0.1:{advertised}");
        // tansu runs under a small sh watchdog that kills it (and removes its
        // directory) when our end of the stdin pipe closes: on Drop, and also
        // when the test process dies without unwinding (a killed or timed-out
        // `cargo test`), so no broker outlives its test. sh exits with tansu's
        // status if tansu exits first.
        let child = Command::new("sh")
            .arg("-c")
            .arg(WATCHDOG)
            .arg(tansu)
            .current_dir(dir.path())
            .arg("broker")
            // tansu resolves the sqlite path relative to its working directory.
            .args(["--storage-engine", "sqlite://tansu.db"])
            .args(["--listener-url", &url])
            .args(["--advertised-listener-url", &advertised_url])
            .args(["--cluster-id", "weir-test"])
            .env(
                "RUST_LOG",
                std::env::var("WEIR_TANSU_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdin(Stdio::piped())
            .stdout(log.try_clone().expect("clone log handle"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", tansu.display()));
        Broker {
            child,
            port,
            advertised,
            log_path,
            startup: Duration::ZERO,
            _dir: dir,
        }
    }

    /// Waits for a TCP connect, then for a successful metadata fetch.
    /// On failure returns the broker's log.
    fn wait_ready(&mut self, started: Instant) -> Result<(), String> {
        let deadline = started + TIMEOUT;
        let addr = SocketAddr::from(([127, 0, 0, 1], self.port));
        let mut connected = false;
        let mut last_err = String::new();
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!("(tansu exited with {status})\n{}", self.log()));
            }
            if !connected {
                connected = TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok();
                if !connected {
                    thread::sleep(Duration::from_millis(20));
                    continue;
                }
            }
            let consumer: BaseConsumer = self.client_config().create().expect("create consumer");
            match consumer.fetch_metadata(None, Duration::from_secs(5)) {
                Ok(md) if !md.brokers().is_empty() => {
                    self.startup = started.elapsed();
                    return Ok(());
                }
                Ok(_) => last_err = "metadata lists no brokers".into(),
                Err(e) => last_err = e.to_string(),
            }
            thread::sleep(Duration::from_millis(50));
        }
        Err(format!("(last error: {last_err})\n{}", self.log()))
    }

    /// `host:port` for `bootstrap.servers`.
    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.advertised)
    }

    /// Time from spawning tansu until it answered a metadata request.
    pub fn startup_time(&self) -> Duration {
        self.startup
    }

    /// Everything tansu has written to stdout/stderr so far.
    pub fn log(&self) -> String {
        fs::read_to_string(&self.log_path).unwrap_or_else(|e| format!("<no log: {e}>"))
    }

    /// A client config pointing at this broker, with fast reconnects; add
    /// settings (e.g. `group.id`) and `create()` any rdkafka client from it.
    pub fn client_config(&self) -> ClientConfig {
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", self.bootstrap())
            .set("broker.address.family", "v4")
            .set("reconnect.backoff.max.ms", "200");
        config
    }

    /// Creates a topic (replication factor 1) and waits until metadata shows it.
    pub fn create_topic(&self, name: &str, partitions: i32) {
        let admin: AdminClient<DefaultClientContext> =
            self.client_config().create().expect("create admin client");
        let topic = NewTopic::new(name, partitions, TopicReplication::Fixed(1));
        let opts = AdminOptions::new().operation_timeout(Some(TIMEOUT));
        let results = block_on(admin.create_topics([&topic], &opts), "create_topics")
            .unwrap_or_else(|e| panic!("create topic {name}: {e}"));
        for result in results {
            if let Err((topic, code)) = result {
                panic!("create topic {topic}: {code:?}\n{}", self.log());
            }
        }
        let consumer: BaseConsumer = self.client_config().create().expect("create consumer");
        let deadline = Instant::now() + TIMEOUT;
        loop {
            let n = self.partition_count_with(&consumer, name);
            if n == partitions as usize {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "topic {name}: metadata shows {n} partitions, want {partitions}"
            );
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// Number of partitions metadata reports for `topic` (0 if unknown).
    pub fn partition_count(&self, topic: &str) -> usize {
        let consumer: BaseConsumer = self.client_config().create().expect("create consumer");
        self.partition_count_with(&consumer, topic)
    }

    fn partition_count_with(&self, consumer: &BaseConsumer, topic: &str) -> usize {
        let md = consumer
            .fetch_metadata(Some(topic), Duration::from_secs(5))
            .unwrap_or_else(|e| panic!("metadata for {topic}: {e}"));
        md.topics()
            .iter()
            .find(|t| t.name() == topic && t.error().is_none())
            .map_or(0, |t| t.partitions().len())
    }

    /// Producer settings used by [`Broker::produce`]; a starting point for
    /// [`Broker::produce_with`] (e.g. add `enable.idempotence`).
    pub fn producer_config(&self) -> ClientConfig {
        let mut config = self.client_config();
        config
            .set("message.timeout.ms", TIMEOUT.as_millis().to_string())
            .set("linger.ms", "5");
        config
    }

    /// Produces `records` and waits until every one is acknowledged.
    /// Returns `(partition, offset)` of each record, in input order.
    pub fn produce(&self, topic: &str, records: &[Record<'_>]) -> Vec<(i32, i64)> {
        self.produce_with(&self.producer_config(), topic, records)
    }

    /// [`Broker::produce`] with a producer created from `config`.
    #[allow(clippy::result_large_err)] // rdkafka's send hands the record back with its error
    pub fn produce_with(
        &self,
        config: &ClientConfig,
        topic: &str,
        records: &[Record<'_>],
    ) -> Vec<(i32, i64)> {
        let producer: BaseProducer<Deliveries> = config
            .create_with_context(Deliveries(Mutex::new(vec![None; records.len()])))
            .expect("create producer");
        for (i, &(key, payload, timestamp, partition)) in records.iter().enumerate() {
            let mut record = BaseRecord::<[u8], [u8], usize>::with_opaque_to(topic, i);
            record.payload = Some(payload);
            record.key = key;
            record.timestamp = timestamp;
            record.partition = partition;
            weir::operators::kafka::send_retrying(
                record,
                |r| producer.send(r),
                || {
                    producer.poll(Duration::from_millis(100));
                },
            )
            .unwrap_or_else(|e| panic!("enqueue record {i} for {topic}: {e}"));
            producer.poll(Duration::ZERO);
        }
        producer
            .flush(TIMEOUT)
            .unwrap_or_else(|e| panic!("flush producer for {topic}: {e}\n{}", self.log()));
        let results = std::mem::take(&mut *producer.context().0.lock().unwrap());
        results
            .into_iter()
            .enumerate()
            .map(|(i, result)| match result {
                Some(Ok(at)) => at,
                Some(Err(e)) => panic!("deliver record {i} to {topic}: {e}\n{}", self.log()),
                None => panic!("no delivery report for record {i} to {topic}"),
            })
            .collect()
    }

    /// Produces the records of a seeded simulation, keyed by device, with
    /// their Kafka timestamps; returns how many were produced.
    pub fn produce_simulation(
        &self,
        topic: &str,
        config: &weir::simulate::SimulatorConfig,
    ) -> usize {
        let records: Vec<_> = weir::simulate::generate(config).collect();
        let batch: Vec<Record<'_>> = records
            .iter()
            .map(|r| {
                (
                    Some(r.key.as_bytes()),
                    r.payload.as_slice(),
                    Some(r.timestamp_ms),
                    None,
                )
            })
            .collect();
        self.produce(topic, &batch);
        records.len()
    }

    /// Reads every record of every partition of `topic`, from the low to the
    /// high watermark as they are when called; sorted by (partition, offset).
    pub fn consume_all(&self, topic: &str) -> Vec<ConsumedRecord> {
        let consumer: BaseConsumer = self
            .client_config()
            .set("group.id", unique_topic("weir-test-reader"))
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .create()
            .expect("create consumer");
        let partitions = self.partition_count_with(&consumer, topic);
        assert!(partitions > 0, "topic {topic} does not exist");
        // next offset wanted per partition, and the high watermark to reach
        let mut wanted = Vec::with_capacity(partitions);
        let mut assignment = TopicPartitionList::new();
        for p in 0..partitions as i32 {
            let (low, high) = consumer
                .fetch_watermarks(topic, p, TIMEOUT)
                .unwrap_or_else(|e| panic!("watermarks of {topic}/{p}: {e}"));
            wanted.push((low, high));
            if high > low {
                assignment
                    .add_partition_offset(topic, p, Offset::Offset(low))
                    .expect("add partition");
            }
        }
        let mut out = Vec::new();
        if assignment.count() == 0 {
            return out;
        }
        consumer.assign(&assignment).expect("assign partitions");
        // Generous: a loaded machine slows tansu's first fetch a lot.
        let deadline = Instant::now() + 3 * TIMEOUT;
        while wanted.iter().any(|(next, high)| next < high) {
            assert!(
                Instant::now() < deadline,
                "consume_all({topic}) timed out: (next, high watermark) per partition: \
                 {wanted:?}, got {} records",
                out.len()
            );
            let Some(result) = consumer.poll(Duration::from_millis(100)) else {
                continue;
            };
            let msg = match result {
                Ok(msg) => msg,
                Err(KafkaError::PartitionEOF(_)) => continue,
                Err(e) => panic!("consume {topic}: {e}\n{}", self.log()),
            };
            let (next, high) = &mut wanted[msg.partition() as usize];
            if msg.offset() >= *high {
                continue; // appended after the watermarks were read
            }
            *next = (*next).max(msg.offset() + 1);
            out.push(ConsumedRecord {
                partition: msg.partition(),
                offset: msg.offset(),
                key: msg.key().map(<[u8]>::to_vec),
                payload: msg.payload().unwrap_or_default().to_vec(),
                timestamp: msg.timestamp().to_millis(),
            });
        }
        out.sort_by_key(|r| (r.partition, r.offset));
        out
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        drop(self.child.stdin.take()); // the watchdog now stops tansu
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs a future to completion on the current thread (rdkafka's admin futures
/// are driven by rdkafka's own threads; no async runtime needed), panicking after
/// [`TIMEOUT`] plus a margin.
pub fn block_on<F: Future>(fut: F, what: &str) -> F::Output {
    struct Unpark(Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unpark(thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut fut = std::pin::pin!(fut);
    let deadline = Instant::now() + TIMEOUT + Duration::from_secs(5);
    loop {
        if let Poll::Ready(out) = fut.as_mut().poll(&mut cx) {
            return out;
        }
        let now = Instant::now();
        assert!(now < deadline, "{what} timed out");
        thread::park_timeout(deadline - now);
    }
}
