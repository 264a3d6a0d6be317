//! A TCP proxy in front of the broker that can simulate an outage: every
//! connection dropped, and new ones dropped as soon as they are accepted,
//! for a while. tansu does not come back reliably when restarted on its
//! store, so outages are simulated here instead.

use std::io;
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// A loopback TCP proxy to `127.0.0.1:<upstream>`.
pub struct Proxy {
    port: u16,
    shared: Arc<Shared>,
}

#[derive(Default)]
struct Shared {
    upstream: AtomicU16,
    down_until: Mutex<Option<Instant>>,
    connections: Mutex<Vec<TcpStream>>,
}

impl Shared {
    fn down(&self) -> bool {
        self.down_until
            .lock()
            .unwrap()
            .is_some_and(|until| Instant::now() < until)
    }
}

impl Proxy {
    /// Listens on a free loopback port; forwards once [`Proxy::set_upstream`] is called.
    pub fn start() -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the proxy");
        let port = listener.local_addr().unwrap().port();
        let shared = Arc::new(Shared::default());
        let accepting = shared.clone();
        thread::spawn(move || {
            for client in listener.incoming().flatten() {
                if accepting.down() {
                    let _ = client.shutdown(Shutdown::Both);
                    continue;
                }
                let upstream = accepting.upstream.load(Ordering::SeqCst);
                let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)) else {
                    continue;
                };
                let mut connections = accepting.connections.lock().unwrap();
                for stream in [&client, &server] {
                    connections.push(stream.try_clone().unwrap());
                }
                pipe(&client, &server);
                pipe(&server, &client);
            }
        });
        Proxy { port, shared }
    }

    /// The port clients connect to.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Where to forward connections.
    pub fn set_upstream(&self, port: u16) {
        self.shared.upstream.store(port, Ordering::SeqCst);
    }

    /// Drops every open connection and every new one for `duration`
    /// (returns at once).
    pub fn outage(&self, duration: Duration) {
        *self.shared.down_until.lock().unwrap() = Some(Instant::now() + duration);
        for stream in self.shared.connections.lock().unwrap().drain(..) {
            let _ = stream.shutdown(Shutdown::Both);
        }
    }
}

/// Copies `from` to `to` on a thread until either side closes.
fn pipe(from: &TcpStream, to: &TcpStream) {
    let (mut from, mut to) = (from.try_clone().unwrap(), to.try_clone().unwrap());
    thread::spawn(move || {
        let _ = io::copy(&mut from, &mut to);
        let _ = to.shutdown(Shutdown::Both);
        let _ = from.shutdown(Shutdown::Both);
    });
}
