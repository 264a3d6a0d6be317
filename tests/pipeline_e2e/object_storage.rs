//! Parquet output and checkpoints on a real S3-compatible server (moto's,
//! in a process of its own): the restart test's kills and aborts, a cluster
//! of processes that share no disk, and the files read back with pyarrow.

use std::time::Duration;

use crate::restart::{killed_and_resumed, lose_processes, wait, weir_run, Scenario};
use crate::s3::S3;

/// The window rows below `url` as pyarrow reads them over S3: the number
/// of rows, and the sum of their counts.
fn read_with_pyarrow(s3: &S3, url: &str) -> (u64, u64) {
    let path = url.trim_start_matches("s3://");
    let script = format!(
        r#"
import os
import pyarrow.dataset as ds
import pyarrow.fs as fs
s3 = fs.S3FileSystem(endpoint_override=os.environ["S3_ENDPOINT"], scheme="http",
                     access_key=os.environ["S3_KEY"], secret_key=os.environ["S3_SECRET"],
                     region="us-east-1")
table = ds.dataset("{path}", filesystem=s3, format="parquet", partitioning="hive").to_table()
print(table.num_rows, sum(table.column("count").to_pylist()))
"#
    );
    let out = s3.python(&script);
    let mut numbers = out.split_whitespace().map(|n| n.parse::<u64>().unwrap());
    (numbers.next().unwrap(), numbers.next().unwrap())
}

#[test]
#[cfg_attr(
    not(feature = "failpoints"),
    ignore = "aborts at fail points: run with --features failpoints (scripts/test.sh does)"
)]
fn parquet_and_checkpoints_on_s3_are_written_exactly_once_across_kills() {
    let s3 = S3::start();
    s3.create_bucket("weir");
    let scenario = Scenario::on_s3(&s3, "weir");
    let written = killed_and_resumed(&scenario);
    let root = scenario.remote_out().unwrap();
    let (rows, count) = read_with_pyarrow(&s3, &format!("{}/windows", root.url()));
    assert_eq!(rows, written.rows.len() as u64, "rows pyarrow reads");
    assert_eq!(
        count,
        written.rows.values().map(|r| r.0).sum::<u64>(),
        "readings counted in the rows pyarrow reads"
    );
}

#[test]
fn a_cluster_sharing_only_a_bucket_loses_a_process_and_resumes_on_one() {
    let s3 = S3::start();
    s3.create_bucket("weir");
    let scenario = Scenario::on_s3(&s3, "weir");
    let rounds = 2;
    lose_processes(&scenario, rounds);
    // Resume on one process, in a working directory of its own.
    let log = scenario.log("single-final");
    let mut child = weir_run(&scenario.pipeline, 2, true, &log, None);
    let status = wait(&mut child, Duration::from_secs(120));
    assert!(
        status.is_some_and(|s| s.success()),
        "the single-process resume failed ({status:?}):\n{}",
        std::fs::read_to_string(&log).unwrap()
    );
    scenario.check(rounds);
}
