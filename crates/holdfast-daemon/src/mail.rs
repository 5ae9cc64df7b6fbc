//! Email notifications over SMTP (lettre): STARTTLS by default, implicit TLS, or plain for a
//! loopback relay.

use lettre::message::header::ContentType;
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use crate::notify::Event;

/// An email channel with its password read. Deliberately not `Debug`.
pub struct Mail {
    /// Recipients.
    pub to: Vec<String>,
    /// `host:port`.
    pub smtp: String,
    /// SMTP user.
    pub user: Option<String>,
    /// SMTP password.
    pub password: Option<String>,
    /// Sender.
    pub from: Option<String>,
    /// `starttls`, `tls` or `none`.
    pub security: String,
}

/// Send `e` as one message to every recipient.
pub async fn send(m: &Mail, e: &Event) -> Result<(), String> {
    let (host, port) = match m.smtp.rsplit_once(':') {
        Some((h, p)) => (
            h.to_string(),
            p.parse::<u16>()
                .map_err(|_| format!("smtp {:?}: bad port", m.smtp))?,
        ),
        None => (m.smtp.clone(), 587),
    };
    let mut b = match m.security.as_str() {
        "tls" => AsyncSmtpTransport::<Tokio1Executor>::relay(&host),
        "none" => Ok(AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(
            &host,
        )),
        _ => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&host),
    }
    .map_err(|x| format!("smtp {host}: {x}"))?
    .port(port);
    if let (Some(u), Some(p)) = (&m.user, &m.password) {
        b = b.credentials(Credentials::new(u.clone(), p.clone()));
    }
    let transport = b.build();
    let from = m
        .from
        .clone()
        .unwrap_or_else(|| format!("holdfast@{}", e.host));
    let subject = format!(
        "[holdfast] {} {}: {}",
        e.event.as_str(),
        e.resource,
        e.condition
    );
    let mut msg = Message::builder()
        .from(from.parse().map_err(|x| format!("from {from:?}: {x}"))?)
        .subject(subject)
        .header(ContentType::TEXT_PLAIN);
    for t in &m.to {
        msg = msg.to(t.parse().map_err(|x| format!("to {t:?}: {x}"))?);
    }
    let body = format!(
        "{}\n\nresource: {}\ncategory: {}\ncondition: {}\njob: {}\nstate: {}\ntime: {}\nhost: {}\n",
        e.text,
        e.resource,
        e.category,
        e.condition,
        e.job.map_or("-".into(), |j| j.to_string()),
        e.state.as_deref().unwrap_or("-"),
        e.time,
        e.host
    );
    let msg = msg.body(body).map_err(|x| x.to_string())?;
    transport
        .send(msg)
        .await
        .map(|_| ())
        .map_err(|x| format!("smtp {host}:{port}: {x}"))
}
