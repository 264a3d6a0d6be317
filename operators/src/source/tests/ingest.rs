//! Lateness, idle partitions and resume positions of one worker's ingest.

use super::*;

fn ingest(partitions: &[(i32, Option<i64>)]) -> Ingest {
    Ingest::new(
        Decoder::default(),
        "t",
        5_000,
        partitions
            .iter()
            .map(|(p, end)| PartitionStart::new(*p, 0, *end, None)),
        Run::default(),
    )
}

/// Feeds (partition, offset, event time); returns accepted offsets and dead letters.
fn feed(
    ingest: &mut Ingest,
    cap_time: u64,
    records: &[(i32, i64, u64)],
) -> (Vec<i64>, Vec<(DeadLetterReason, i64)>) {
    let (mut readings, mut dead) = (Vec::new(), Vec::new());
    for (partition, offset, time) in records {
        let payload = format!(r#"{{"device_id":"d","sensor":"s","value":1,"ts":{time}}}"#);
        let record = RecordRef {
            partition: *partition,
            offset: *offset,
            key: None,
            value: payload.as_bytes(),
            timestamp: None,
            headers: &[],
        };
        ingest.accept(record, cap_time, &mut readings, &mut dead);
    }
    (
        readings.iter().map(|r| r.offset).collect(),
        dead.iter().map(|d| (d.reason, d.offset)).collect(),
    )
}

#[test]
fn lateness_is_judged_per_partition() {
    let mut ing = ingest(&[(0, None), (1, None)]);
    // Partition 0 reaches 20 s; partition 1 is still at 1 s: its old readings are not late.
    let (ok, dead) = feed(
        &mut ing,
        0,
        &[
            (0, 0, 20_000),
            (1, 0, 1_000),
            (1, 1, 2_000),
            (0, 1, 15_000),
            (0, 2, 14_999),
        ],
    );
    assert_eq!(ok, vec![0, 0, 1, 1]);
    assert_eq!(dead, vec![(DeadLetterReason::Late, 2)]);
    // The source watermark is the slower partition's: 2 s - 5 s, saturated at 0.
    assert_eq!(ing.watermark(false), Watermark::At(0));
    feed(&mut ing, 0, &[(1, 2, 30_000)]);
    assert_eq!(ing.watermark(false), Watermark::At(15_000));
}

#[test]
fn a_partition_without_records_holds_the_watermark_until_idle() {
    let mut ing = ingest(&[(0, None), (1, None)]);
    feed(&mut ing, 0, &[(0, 0, 20_000)]);
    assert_eq!(ing.watermark(false), Watermark::Unknown);
    ing.check_idle(Duration::ZERO);
    // Partition 1 delivered nothing: idle, it no longer holds partition 0 back.
    assert_eq!(ing.watermark(false), Watermark::At(15_000));
    ing.check_idle(Duration::ZERO);
    // Both idle now: nothing holds the watermark; it moves on from the
    // highest partition watermark (15 s) with the time spent idle.
    assert_eq!(ing.watermark(false), Watermark::Idle);
    let idle = ing.idle_watermark().unwrap();
    assert!((15_000..20_000).contains(&idle), "{idle}");
    // Partition 1 wakes with a reading behind the capability: late after idle.
    let (ok, dead) = feed(&mut ing, 15_000, &[(1, 0, 3_000), (1, 1, 16_000)]);
    assert_eq!(ok, vec![1]);
    assert_eq!(dead, vec![(DeadLetterReason::LateAfterIdle, 0)]);
}

/// A checkpoint resumes a partition at its first record that has an
/// event time in the restart bucket or later, or was read while the
/// source's capability was there, with the largest event time accepted
/// before it. Checked against a plain scan of what happened, with
/// readings out of order across buckets, undecodable records (read,
/// never accepted), capability moves and checkpoints between them.
#[test]
fn resume_positions_are_the_first_record_at_or_after_the_restart_bucket() {
    for seed in 1..=40u64 {
        let mut next = crate::seeded(seed);
        // Out of order by up to 4 s (the bound is 5 s): nothing is late.
        // A gap of 10 s every 50 records lets the capability move past
        // the buckets read so far.
        let times: Vec<u64> = (0..400u64)
            .map(|i| 100_000 + i * 137 + i / 50 * 10_000 + next(4_000))
            .collect();
        let bucket = |t: u64| t - t % RESUME_BUCKET_MS;
        let mut ingest = ingest(&[(0, None)]);
        // What a mark may come from: (bucket, offset) of every accepted
        // reading and of the next offset at every capability move.
        let mut candidates: Vec<(u64, i64)> = Vec::new();
        let mut accepted: Vec<(i64, u64)> = Vec::new();
        let (mut fed, mut cap, mut restart) = (0, 0, 100_000);
        while fed < times.len() {
            if next(2) == 0 {
                // The capability never passes a reading still to come.
                let earliest = times[fed..].iter().min().copied().unwrap_or(u64::MAX);
                cap = cap.max(earliest.saturating_sub(next(1_000)));
                ingest.capability_moved(cap);
                candidates.push((bucket(cap), fed as i64));
            }
            // Steps end at the gaps, so the capability can move into one.
            let upto = (fed + 1 + next(60) as usize)
                .min(times.len())
                .min((fed / 50 + 1) * 50);
            for (i, &time) in times.iter().enumerate().take(upto).skip(fed) {
                let undecodable = next(4) == 0;
                let payload = match undecodable {
                    true => "not json".to_owned(),
                    false => {
                        format!(r#"{{"device_id":"d","sensor":"s","value":1,"ts":{time}}}"#)
                    }
                };
                let record = RecordRef {
                    partition: 0,
                    offset: i as i64,
                    key: None,
                    value: payload.as_bytes(),
                    timestamp: None,
                    headers: &[],
                };
                let (mut readings, mut dead) = (Vec::new(), Vec::new());
                ingest.accept(record, cap, &mut readings, &mut dead);
                assert_eq!(
                    (readings.len(), dead.len()),
                    if undecodable { (0, 1) } else { (1, 0) },
                    "seed {seed}, offset {i}"
                );
                if !undecodable {
                    candidates.push((bucket(time), i as i64));
                    accepted.push((i as i64, time));
                }
            }
            fed = upto;
            // Checkpoints restart near the capability, as a frontier
            // minus a window would.
            restart = restart.max(cap.saturating_sub(next(2_000)));
            // The reference: a plain scan of what happened so far.
            let first = (candidates.iter())
                .filter(|(b, _)| *b >= bucket(restart))
                .map(|(_, offset)| *offset)
                .min()
                .unwrap_or(fed as i64);
            let max_before = (accepted.iter())
                .filter(|(offset, _)| *offset < first)
                .map(|(_, t)| *t)
                .max();
            let part = ingest.resume_part(restart);
            let got = &part.partitions[0];
            assert_eq!(
                (got.offset, got.max_time),
                (first, max_before),
                "seed {seed}, restart at {restart}, {fed} records fed"
            );
        }
    }
}

/// An idle partition keeps one idle mark however often the capability
/// moves while it waits, and judges what it reads next against the
/// latest: before, it gained a mark at every move, and every record it
/// read went through all of them.
#[test]
fn an_idle_partition_keeps_one_mark_at_its_offset() {
    let mut ingest = ingest(&[(0, None), (1, None)]);
    feed(&mut ingest, 0, &[(0, 0, 1_000), (1, 0, 2_000)]);
    // Partition 0 moves on; partition 1 has nothing more to read.
    let mut cap = 0;
    for i in 0..10_000u64 {
        let time = 10_000 + i * 100;
        feed(&mut ingest, cap, &[(0, 1 + i as i64, time)]);
        cap = time - 5_000;
        ingest.capability_moved(cap);
    }
    let marks = &ingest.partitions[1].idle_marks;
    assert_eq!(marks.len(), 1, "idle marks after 10,000 moves");
    assert_eq!(marks[0], (1, cap));
    // Partition 1 wakes: a reading below the latest capability is late,
    // one at it is taken.
    let (ok, dead) = feed(&mut ingest, cap, &[(1, 1, cap - 1), (1, 2, cap)]);
    assert_eq!(ok, vec![2]);
    assert_eq!(dead, vec![(DeadLetterReason::LateAfterIdle, 1)]);
    let part = ingest.resume_part(cap);
    let idle: Vec<_> = part.partitions.iter().map(|p| p.idle_marks.len()).collect();
    assert!(
        idle.iter().all(|n| *n <= 1),
        "idle marks in the checkpoint: {idle:?}"
    );
}

/// A partition declared idle (a wall-clock decision) makes its
/// late-waking records dead letters; a run resumed from a checkpoint
/// taken before them, re-reading them with a lower watermark and
/// without that decision, judges them exactly as the first run did.
#[test]
fn a_resumed_source_keeps_the_idle_decisions_of_the_first_run() {
    let early = [(0, 0, 20_000), (1, 0, 10_000)];
    let late = [(1, 1, 9_000), (1, 2, 16_000), (0, 1, 21_000)];
    let mut first = ingest(&[(0, None), (1, None)]);
    let (mut ok, mut dead) = feed(&mut first, 0, &early);
    // Partition 1 goes quiet and is declared idle; the watermark moves
    // on to 15 s, past what it will deliver next.
    first.check_idle(Duration::ZERO);
    first.check_idle(Duration::ZERO);
    assert_eq!(first.watermark(false), Watermark::Idle);
    first.capability_moved(15_000);
    // A checkpoint whose windows need re-reading from 15 s.
    let part = first.resume_part(15_000);
    let (more_ok, more_dead) = feed(&mut first, 15_000, &late);
    assert_eq!(more_dead, vec![(DeadLetterReason::LateAfterIdle, 1)]);
    ok.extend(more_ok);
    dead.extend(more_dead);

    let restored: BTreeMap<i32, PartitionResume> = part
        .partitions
        .into_iter()
        .map(|p| (p.partition, p))
        .collect();
    let from = |p: i32| restored[&p].offset;
    let mut resumed = Ingest::new(
        Decoder::default(),
        "t",
        5_000,
        [0, 1].map(|p| PartitionStart::new(p, 0, None, restored.get(&p))),
        Run::default(),
    );
    // The resumed run re-reads from the checkpoint's offsets, at a lower
    // watermark, and is not told again that partition 1 was idle.
    resumed.check_idle(Duration::ZERO);
    let reread: Vec<(i32, i64, u64)> = early
        .iter()
        .chain(&late)
        .filter(|(p, offset, _)| *offset >= from(*p))
        .copied()
        .collect();
    assert!(reread.contains(&(1, 1, 9_000)));
    // The first run accepted every re-read record but one.
    assert_eq!(ok.len(), early.len() + late.len() - 1);
    let (again_ok, again_dead) = feed(&mut resumed, 0, &reread);
    assert_eq!(
        again_dead, dead,
        "the same dead letter, for the same reason"
    );
    assert_eq!(again_ok.len(), reread.len() - 1);
}

#[test]
fn bounded_partitions_finish_at_their_end_offset() {
    let mut ing = ingest(&[(0, Some(2)), (1, Some(1))]);
    feed(&mut ing, 0, &[(0, 0, 1_000), (1, 0, 9_000)]);
    // Partition 1 is done and no longer holds the watermark back.
    assert_eq!(ing.watermark(true), Watermark::At(0));
    let (ok, _) = feed(&mut ing, 0, &[(0, 1, 7_000), (0, 2, 8_000)]);
    assert_eq!(ok, vec![1], "offset 2 is beyond the end seen at start");
    assert_eq!(ing.watermark(true), Watermark::Done);
    assert_eq!(
        ingest(&[]).watermark(false),
        Watermark::Done,
        "a worker without partitions is done"
    );
}

/// A record the consumer delivers again within a run (after a pause in
/// the middle of a poll) is taken once: the second delivery is neither a
/// reading nor a dead letter, and later offsets go on as before. The first
/// record read may lie before the start position (a reset to the earliest
/// offset): it is taken.
#[test]
fn a_record_delivered_twice_is_taken_once() {
    let mut ing = Ingest::new(
        Decoder::default(),
        "t",
        5_000,
        [PartitionStart::new(0, 5, None, None)],
        Run::default(),
    );
    let (ok, dead) = feed(
        &mut ing,
        0,
        &[
            (0, 2, 1_000),
            (0, 3, 2_000),
            (0, 3, 2_000),
            (0, 2, 1_000),
            (0, 4, 3_000),
        ],
    );
    assert_eq!(ok, vec![2, 3, 4]);
    assert!(dead.is_empty(), "{dead:?}");
    assert_eq!(ing.partitions[0].read, 3);
}
