use super::*;

#[test]
fn the_back_off_doubles_up_to_its_bound() {
    let retry = Retry {
        backoff: Duration::from_secs(1),
        max_backoff: Duration::from_secs(10),
        max_attempts: 5,
        timeout: Duration::from_secs(1),
    };
    let waits: Vec<u64> = (1..=6).map(|a| retry.wait(a).as_secs()).collect();
    assert_eq!(waits, vec![1, 2, 4, 8, 10, 10]);
    assert_eq!(retry.wait(1_000), Duration::from_secs(10));
}
