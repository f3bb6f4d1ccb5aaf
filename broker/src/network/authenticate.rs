//! The SASL gate of a SASL_PLAINTEXT / SASL_SSL connection. Until the client has
//! authenticated, only ApiVersions, SaslHandshake and SaslAuthenticate are served (any other
//! request closes the connection, as in Kafka). SaslHandshake v0 switches to the old framing
//! where raw SASL tokens follow in plain size-prefixed frames; v1 uses SaslAuthenticate.
//! A failure answers SASL_AUTHENTICATION_FAILED after `connection.failed.authentication.delay.ms`
//! and closes.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{
    ApiKey, RequestKind, ResponseKind, SaslAuthenticateResponse, SaslHandshakeRequest,
    SaslHandshakeResponse,
};
use strata_protocol::kafka_protocol;
use strata_protocol::request::{decode_request, RequestError};
use strata_protocol::response::encode_response;
use tokio::io::AsyncRead;
use tokio_util::sync::CancellationToken;

use super::frames::{FrameReader, ReadReady};
use super::writer::{Flow, ReplySink, ReplyWriter};
use super::ListenerContext;
use crate::errors::ErrorCode;
use crate::handlers::{self, str_bytes, Reply, RequestContext};
use crate::security::sasl::{SaslAuthenticator, SaslMechanism, SaslOutcome};
use crate::security::KafkaPrincipal;
use crate::server::Broker;

/// Kafka's default for `connection.failed.authentication.delay.ms`.
const DEFAULT_FAILED_AUTH_DELAY_MS: u64 = 100;

/// Runs the SASL exchange; `Some(principal)` once authenticated, `None` when the connection
/// must close (failure, protocol violation, end of stream, shutdown). Each response is
/// written before the next request is read.
pub(super) async fn authenticate(
    frames: &mut FrameReader<impl AsyncRead + ReadReady + Unpin>,
    replies: &mut ReplyWriter<impl ReplySink>,
    listener: &ListenerContext,
    broker: &Arc<Broker>,
    peer: SocketAddr,
    shutdown: &CancellationToken,
) -> Option<KafkaPrincipal> {
    let mut authenticator: Option<SaslAuthenticator> = None;
    // After SaslHandshake v0 the tokens travel without Kafka headers.
    let mut raw_tokens = false;
    loop {
        let frame = tokio::select! {
            frame = frames.next_frame() => frame,
            () = shutdown.cancelled() => return None,
        };
        let frame = match frame {
            Ok(Some(frame)) => frame,
            Ok(None) => return None,
            Err(reason) => {
                tracing::info!(%peer, %reason, "closing connection during authentication");
                return None;
            }
        };
        if raw_tokens {
            let auth = authenticator.as_mut()?;
            match auth.step(&frame) {
                Ok(SaslOutcome::Continue(token)) => {
                    send(replies, Reply::Frame(raw_frame(&token))).await?
                }
                Ok(SaslOutcome::Authenticated { principal, token }) => {
                    send(replies, Reply::Frame(raw_frame(&token))).await?;
                    log_success(broker, peer, listener, auth.mechanism(), &principal);
                    return Some(principal);
                }
                Err(failure) => {
                    // The old framing has no way to say why: Kafka closes the connection.
                    log_failure(broker, peer, listener, auth.mechanism(), &failure.reason);
                    failure_delay(broker, shutdown).await;
                    return None;
                }
            }
            continue;
        }
        let received = std::time::Instant::now();
        let request = match decode_request(frame) {
            Ok(request) => request,
            Err(RequestError::UnsupportedVersion {
                api_key: ApiKey::ApiVersions,
                correlation_id,
                ..
            }) => {
                send(
                    replies,
                    handlers::api_versions::unsupported_version_response(correlation_id),
                )
                .await?;
                continue;
            }
            Err(e) => {
                tracing::info!(%peer, error = %e, "undecodable request during authentication, closing connection");
                return None;
            }
        };
        let (correlation_id, version) = (request.correlation_id, request.api_version);
        match request.body {
            RequestKind::ApiVersions(body) => {
                let context = RequestContext {
                    api_key: request.api_key,
                    api_version: version,
                    correlation_id,
                    client_id: request.header.client_id.as_ref().map(|s| s.to_string()),
                    listener: listener.name.clone(),
                    peer,
                    principal: Arc::new(KafkaPrincipal::anonymous()),
                    received,
                    mute_ms: Arc::default(),
                };
                let reply = handlers::handle(broker, context, RequestKind::ApiVersions(body)).await;
                send(replies, reply).await?;
            }
            RequestKind::SaslHandshake(body) if authenticator.is_none() => {
                let (response, chosen) = handshake(&body, &listener.sasl_mechanisms);
                send(
                    replies,
                    encode(
                        correlation_id,
                        ApiKey::SaslHandshake,
                        version,
                        ResponseKind::SaslHandshake(response),
                    ),
                )
                .await?;
                let Some(mechanism) = chosen else {
                    tracing::info!(%peer, listener = %listener.name, mechanism = %body.mechanism.as_str(), "unsupported SASL mechanism; closing connection");
                    return None;
                };
                authenticator = Some(SaslAuthenticator::new(
                    mechanism,
                    broker.credentials.clone(),
                ));
                raw_tokens = version == 0;
            }
            RequestKind::SaslAuthenticate(body) if authenticator.is_some() => {
                let auth = authenticator.as_mut()?;
                let (response, outcome) = match auth.step(&body.auth_bytes) {
                    Ok(SaslOutcome::Continue(token)) => (authenticate_response(token), None),
                    Ok(SaslOutcome::Authenticated { principal, token }) => {
                        (authenticate_response(token), Some(Ok(principal)))
                    }
                    Err(failure) => {
                        log_failure(broker, peer, listener, auth.mechanism(), &failure.reason);
                        failure_delay(broker, shutdown).await;
                        let response = SaslAuthenticateResponse::default()
                            .with_error_code(ErrorCode::SaslAuthenticationFailed.code())
                            .with_error_message(Some(str_bytes(failure.client_message)));
                        (response, Some(Err(())))
                    }
                };
                send(
                    replies,
                    encode(
                        correlation_id,
                        ApiKey::SaslAuthenticate,
                        version,
                        ResponseKind::SaslAuthenticate(response),
                    ),
                )
                .await?;
                match outcome {
                    None => {}
                    Some(Ok(principal)) => {
                        log_success(broker, peer, listener, auth.mechanism(), &principal);
                        return Some(principal);
                    }
                    Some(Err(())) => return None,
                }
            }
            RequestKind::SaslHandshake(_) | RequestKind::SaslAuthenticate(_) => {
                // A second handshake, or SaslAuthenticate before any: ILLEGAL_SASL_STATE.
                let response = match request.api_key {
                    ApiKey::SaslHandshake => ResponseKind::SaslHandshake(
                        SaslHandshakeResponse::default()
                            .with_error_code(ErrorCode::IllegalSaslState.code()),
                    ),
                    _ => ResponseKind::SaslAuthenticate(
                        SaslAuthenticateResponse::default()
                            .with_error_code(ErrorCode::IllegalSaslState.code())
                            .with_error_message(Some(str_bytes(
                                "Unexpected SaslAuthenticate: send SaslHandshake v1 first",
                            ))),
                    ),
                };
                send(
                    replies,
                    encode(correlation_id, request.api_key, version, response),
                )
                .await?;
                tracing::info!(%peer, api = ?request.api_key, "SASL request out of order; closing connection");
                return None;
            }
            _ => {
                tracing::info!(
                    %peer,
                    listener = %listener.name,
                    api = ?request.api_key,
                    "request before SASL authentication; closing connection"
                );
                return None;
            }
        }
    }
}

fn handshake(
    body: &SaslHandshakeRequest,
    enabled: &[SaslMechanism],
) -> (SaslHandshakeResponse, Option<SaslMechanism>) {
    let chosen = SaslMechanism::from_name(body.mechanism.as_str()).filter(|m| enabled.contains(m));
    let response = SaslHandshakeResponse::default()
        .with_error_code(if chosen.is_some() {
            0
        } else {
            ErrorCode::UnsupportedSaslMechanism.code()
        })
        .with_mechanisms(enabled.iter().map(|m| str_bytes(m.name())).collect());
    (response, chosen)
}

fn authenticate_response(token: Vec<u8>) -> SaslAuthenticateResponse {
    SaslAuthenticateResponse::default().with_auth_bytes(Bytes::from(token))
}

fn encode(correlation_id: i32, api_key: ApiKey, version: i16, body: ResponseKind) -> Reply {
    match encode_response(correlation_id, api_key, version, &body) {
        Ok(frame) => Reply::Frame(frame),
        Err(e) => {
            tracing::error!(api = ?api_key, version, error = %e, "cannot encode SASL response");
            Reply::Close
        }
    }
}

/// A raw SASL token as the v0 framing sends it: size prefix, then the token.
fn raw_frame(token: &[u8]) -> BytesMut {
    let mut frame = BytesMut::with_capacity(4 + token.len());
    frame.put_u32(u32::try_from(token.len()).unwrap_or(u32::MAX));
    frame.put_slice(token);
    frame
}

/// Writes a reply; `None` when the connection must close (a refused request, or it cannot
/// be written to any more).
async fn send(replies: &mut ReplyWriter<impl ReplySink>, reply: Reply) -> Option<()> {
    match replies.send(reply).await {
        Ok(Flow::Continue) => Some(()),
        Ok(Flow::Close) | Err(_) => None,
    }
}

async fn failure_delay(broker: &Broker, shutdown: &CancellationToken) {
    let delay = broker
        .config
        .get("connection.failed.authentication.delay.ms")
        .and_then(|v| v.trim().parse::<u64>().ok())
        .unwrap_or(DEFAULT_FAILED_AUTH_DELAY_MS);
    tokio::select! {
        () = tokio::time::sleep(Duration::from_millis(delay)) => {}
        () = shutdown.cancelled() => {}
    }
}

fn log_success(
    broker: &Broker,
    peer: SocketAddr,
    listener: &ListenerContext,
    mechanism: SaslMechanism,
    principal: &KafkaPrincipal,
) {
    broker.metrics.sasl_authentication(mechanism.name(), true);
    tracing::debug!(%peer, listener = %listener.name, mechanism = mechanism.name(), %principal, "SASL authentication succeeded");
}

fn log_failure(
    broker: &Broker,
    peer: SocketAddr,
    listener: &ListenerContext,
    mechanism: SaslMechanism,
    reason: &str,
) {
    broker.metrics.sasl_authentication(mechanism.name(), false);
    // The reason names the user at most, never a password or proof.
    tracing::info!(%peer, listener = %listener.name, mechanism = mechanism.name(), %reason, "SASL authentication failed");
}
