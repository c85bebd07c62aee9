//! A Rust service that links omnicast: it runs the server in-process, emits typed events
//! through the generated emitters (on the same publish path as the HTTP API), and receives them
//! back as a staff member would, with the Rust client (`omnicast::client`).
//!
//! `cargo run --example service`; connect other clients with the printed URL (e.g.
//! `websocat "ws://127.0.0.1:8090/ws?token=..."`). Ctrl-C stops it.

use std::net::SocketAddr;
use std::time::Duration;

use omnicast::client::{Client, ClientConfig, Message};
use omnicast::runtime::{JwtConfig, Server, ServerConfig, bind, mint_hs256};
use omnicast::{
    AnyEvent, CATALOG, Events, InventoryUpdatedPayload, Namespace, Role, StockChangeReason,
};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let secret = "example-secret-change-me-0123456789";
    let config = ServerConfig::new(
        JwtConfig::hs256(secret),
        vec!["example-api-key-0123456789".into()],
    );
    let server = Server::new(&CATALOG, config)?;
    let listener = bind(SocketAddr::from(([127, 0, 0, 1], 8090)), 1024, None)?;
    let url = format!("ws://{}/ws", listener.local_addr()?);
    let token = mint_hs256(secret.as_bytes(), "staff-1", "staff", 3600);
    println!("{url}?token={token}");

    // A typed client of the same server: it reconnects and resumes by itself.
    let config = ClientConfig::new(url).namespaces([Namespace::Inventory]);
    let mut client = Client::connect(config, token);
    tokio::spawn(async move {
        while let Some(message) = client.next().await {
            match message {
                Message::Event(received) => match received.event {
                    AnyEvent::InventoryUpdated(update) => println!(
                        "received {}: {} now {} ({:+})",
                        received.id,
                        update.sku,
                        update.new_stock,
                        update.difference().unwrap_or_default()
                    ),
                    other => println!("received {}", other.event_type()),
                },
                Message::Status(status) => println!("client: {status:?}"),
                _ => {}
            }
        }
    });

    // Typed emitters over the server's publisher: compile-time checked payloads.
    let events = Events::new(server.publisher());
    tokio::spawn(async move {
        let mut stock = 50;
        loop {
            tokio::time::sleep(Duration::from_secs(2)).await;
            // `new` computes `difference`; it fails only if `newStock - oldStock` overflows.
            let payload = InventoryUpdatedPayload::new(
                "PROD-456".into(),
                "Wireless Headphones".into(),
                "WH-001".into(),
                stock,
                stock - 1,
                Some(StockChangeReason::Sale),
            )
            .expect("a one-unit change fits an i64");
            stock -= 1;
            match events
                .inventory_updated(payload)
                .to_roles([Role::Admin, Role::Staff])
                .send()
                .await
            {
                Ok(id) => println!("emitted inventory:updated {id} (difference computed: -1)"),
                Err(err) => eprintln!("emit failed: {err}"),
            }
        }
    });

    server
        .serve(listener, async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}
