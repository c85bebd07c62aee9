//! Three `omnicast serve --broker redis://…` processes on one real `redis-server`, as an
//! operator runs them; one node is killed with SIGKILL.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use tokio_tungstenite::tungstenite::Message;

const SECRET: &str = "cluster-test-secret-0123456789";
const API_KEY: &str = "cluster-test-api-key-0123456789";

/// A child process killed when the test ends, however it ends.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn redis_server() -> (Running, u16) {
    let port = free_port();
    let dir = std::env::temp_dir().join(format!("omnicast-cli-redis-{port}"));
    std::fs::create_dir_all(&dir).unwrap();
    let child = Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(["--save", "", "--appendonly", "no"])
        .arg("--dir")
        .arg(&dir)
        .stdout(Stdio::null())
        .spawn()
        .expect("redis-server runs (apt-get install -y redis-server; .ci/run does)");
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "redis-server did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    (Running(child), port)
}

/// A node: `omnicast serve --broker …` on a free port, ready.
fn node(redis: u16) -> (Running, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_omnicast"))
        .args(["serve", "--bind", "127.0.0.1:0"])
        .args(["--broker", &format!("redis://127.0.0.1:{redis}")])
        .args(["--jwt-secret", SECRET, "--api-key", API_KEY])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let banner = lines.next().expect("the banner").unwrap();
    assert!(banner.contains("(Redis broker at 127.0.0.1:"), "{banner}");
    let addr = banner["omnicast listening on ws://".len()..]
        .split("/ws")
        .next()
        .unwrap()
        .to_owned();
    // The rest of the banner is not needed; keep the pipe drained.
    std::thread::spawn(move || for _ in lines {});
    let deadline = Instant::now() + Duration::from_secs(10);
    while http(&addr, "GET", "/readyz", "").0 != 200 {
        assert!(Instant::now() < deadline, "the node never became ready");
        std::thread::sleep(Duration::from_millis(50));
    }
    (Running(child), addr)
}

/// One HTTP/1.1 request; the status and the body.
fn http(addr: &str, method: &str, path: &str, body: &str) -> (u16, String) {
    let Ok(mut stream) = TcpStream::connect(addr) else {
        return (0, String::new());
    };
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {API_KEY}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).unwrap();
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response);
    let status = response
        .get(9..12)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = response
        .split_once("\r\n\r\n")
        .map_or(String::new(), |(_, b)| b.to_owned());
    (status, body)
}

fn publish(addr: &str, body: serde_json::Value) -> String {
    let (status, reply) = http(addr, "POST", "/api/events", &body.to_string());
    assert_eq!(status, 202, "{reply}");
    let reply: serde_json::Value = serde_json::from_str(&reply).unwrap();
    reply["id"].as_str().unwrap().to_owned()
}

fn token(user: &str, role: &str) -> String {
    omnicast::runtime::mint_hs256(SECRET.as_bytes(), user, role, 3600)
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn connect(addr: &str, user: &str, role: &str, query: &str) -> (Ws, serde_json::Value) {
    let url = format!("ws://{addr}/ws?token={}&{query}", token(user, role));
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    let ready = next(&mut ws, Duration::from_secs(10)).await;
    assert_eq!(ready["type"], "ready", "{ready}");
    (ws, ready)
}

async fn next(ws: &mut Ws, within: Duration) -> serde_json::Value {
    loop {
        let message = tokio::time::timeout(within, ws.next())
            .await
            .expect("a message in time")
            .expect("open")
            .expect("valid");
        if let Message::Text(text) = message {
            return serde_json::from_str(&text).unwrap();
        }
    }
}

fn payment(n: u64) -> serde_json::Value {
    serde_json::json!({"type": "payment:received", "data": {
        "paymentId": format!("PAY-{n}"), "orderId": format!("ORD-{n}"), "customerId": "c-9",
        "amount": n, "method": "credit_card", "status": "success"}})
}

#[test]
fn a_killed_nodes_customers_go_offline_once_and_its_clients_recover_elsewhere() {
    let (_redis, port) = redis_server();
    let (_a, a) = node(port);
    let (_b, b) = node(port);
    let (mut c, c_addr) = node(port);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let (mut staff, _) = connect(&a, "staff-1", "staff", "namespaces=customers,system").await;
        let (mut customer, _) = connect(&c_addr, "c-9", "customer", "namespaces=payments").await;
        let online = next(&mut staff, Duration::from_secs(10)).await;
        assert_eq!(online["type"], "customer:online", "{online}");
        publish(&b, payment(1));
        let first = next(&mut customer, Duration::from_secs(10)).await;
        let since = first["id"].as_str().unwrap().to_owned();

        // SIGKILL: no connection is closed, no presence is removed by the node itself.
        let status = Command::new("kill")
            .args(["-KILL", &c.0.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let _ = c.0.wait();
        publish(&a, payment(2));
        publish(&b, payment(3));

        // Heartbeats expire after 5 s; a survivor reaps within another second.
        let offline = next(&mut staff, Duration::from_secs(15)).await;
        assert_eq!(offline["type"], "customer:offline", "{offline}");
        assert_eq!(offline["data"]["customerId"], "c-9");

        // The client recovers on another node (and comes online again there).
        let (mut customer, ready) = connect(
            &b,
            "c-9",
            "customer",
            &format!("namespaces=payments&since={since}"),
        )
        .await;
        assert_eq!(ready["recovered"]["payments"], true, "{ready}");
        for n in [2, 3] {
            let event = next(&mut customer, Duration::from_secs(10)).await;
            assert_eq!(event["data"]["amount"].as_f64(), Some(n as f64), "{event}");
        }
        let online = next(&mut staff, Duration::from_secs(10)).await;
        assert_eq!(online["type"], "customer:online", "{online}");
        // Nothing else reached staff: the dead node's customer went offline once.
        publish(
            &a,
            serde_json::json!({"type": "system:maintenance", "data": {"message": "end"}}),
        );
        let end = next(&mut staff, Duration::from_secs(10)).await;
        assert_eq!(end["type"], "system:maintenance", "{end}");
        let _ = staff.close(None).await;
    });
}
