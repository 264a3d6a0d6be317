//! Stop signals, through signal-hook alone: the first SIGINT or SIGTERM sets
//! one flag that whoever runs looks at (a run, a recording, the demo); a
//! second one, with the flag already set, exits at once with status 130.
//! SIGHUP (rule reloads) is registered by [`crate::reload`].

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use signal_hook::consts::{SIGINT, SIGTERM};

/// The flag the first stop signal sets, with its handlers installed once
/// per process. It is cleared for each new user (see [`stop_signal`]).
fn flag() -> anyhow::Result<&'static Arc<AtomicBool>> {
    static FLAG: OnceLock<Result<Arc<AtomicBool>, String>> = OnceLock::new();
    FLAG.get_or_init(|| {
        let flag = Arc::new(AtomicBool::new(false));
        for signal in [SIGINT, SIGTERM] {
            // The shutdown first: it sees the flag as the earlier signal left it.
            signal_hook::flag::register_conditional_shutdown(signal, 130, flag.clone())
                .and_then(|_| signal_hook::flag::register(signal, flag.clone()))
                .map_err(|e| e.to_string())?;
        }
        Ok(flag)
    })
    .as_ref()
    .map_err(|e| anyhow::anyhow!("cannot install the signal handlers: {e}"))
}

/// The stop flag, cleared: set by the next SIGINT or SIGTERM.
pub(crate) fn stop_signal() -> anyhow::Result<Arc<AtomicBool>> {
    let flag = flag()?;
    flag.store(false, Ordering::SeqCst);
    Ok(flag.clone())
}

/// Waits for SIGINT or SIGTERM.
pub fn wait_for_signal() -> anyhow::Result<()> {
    let flag = stop_signal()?;
    while !flag.load(Ordering::Relaxed) {
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    Ok(())
}
