//! [`Rfc2136Provider`]: DNS-01 records through dynamic updates (RFC 2136) signed with a TSIG
//! key (RFC 8945, HMAC-SHA256 or HMAC-SHA512), sent over TCP to the zone's primary. Works
//! with BIND (`update-policy` / `allow-update { key … }`), Knot and PowerDNS.
//!
//! One UPDATE per record: the zone section names the zone, the update section adds the TXT
//! record (class IN) or deletes that one record (class NONE, RFC 2136 §2.5.4), so the other
//! values at the same name stay. The answer must carry a TSIG that verifies against the
//! request's MAC; an unsigned or badly signed answer is an error even when it says NOERROR.
//!
//! The key is decoded once into an `aws_lc_rs::hmac::Key`; this type's `Debug` shows the
//! server, zone and key name, never the secret, and no error carries it.

use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lc_rs::hmac;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::config::{DnsConfig, TsigAlgorithm};
use crate::dns::DnsProvider;
use crate::error::LetsEncryptError;

/// The RFC 2136 provider (see the module docs).
pub struct Rfc2136Provider {
    server: SocketAddr,
    zone: String,
    key_name: String,
    algorithm: TsigAlgorithm,
    key: hmac::Key,
    ttl: u32,
    timeout: Duration,
}

impl std::fmt::Debug for Rfc2136Provider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rfc2136Provider")
            .field("server", &self.server)
            .field("zone", &self.zone)
            .field("key_name", &self.key_name)
            .field("algorithm", &self.algorithm)
            .finish_non_exhaustive()
    }
}

const TYPE_SOA: u16 = 6;
const TYPE_TXT: u16 = 16;
const TYPE_TSIG: u16 = 250;
const CLASS_IN: u16 = 1;
const CLASS_NONE: u16 = 254;
const CLASS_ANY: u16 = 255;
/// Opcode UPDATE (5) in the header flags.
const FLAGS_UPDATE: u16 = 5 << 11;
/// The clock skew a TSIG allows (RFC 8945 recommends 300 s).
const FUDGE: u16 = 300;

impl Rfc2136Provider {
    /// A provider for `config` (checked by [`crate::LetsEncryptConfig`]'s validation: the
    /// server is an IP address and port, the secret base64).
    pub fn new(config: &DnsConfig) -> Result<Self, LetsEncryptError> {
        let server = config.server.parse().map_err(|_| {
            LetsEncryptError::dns(&config.server, "dns.server is not an IP address and port")
        })?;
        let secret = crate::acme::base64url_decode(config.tsig.secret.expose())
            .filter(|bytes| !bytes.is_empty())
            .ok_or_else(|| {
                LetsEncryptError::dns(&config.server, "dns.tsig.secret is not base64")
            })?;
        let algorithm = match config.tsig.algorithm {
            TsigAlgorithm::HmacSha256 => hmac::HMAC_SHA256,
            TsigAlgorithm::HmacSha512 => hmac::HMAC_SHA512,
        };
        Ok(Self {
            server,
            zone: config.zone.to_ascii_lowercase(),
            key_name: config.tsig.name.to_ascii_lowercase(),
            algorithm: config.tsig.algorithm,
            key: hmac::Key::new(algorithm, &secret),
            ttl: config.ttl,
            timeout: config.timeout,
        })
    }

    /// Sends one signed UPDATE with `record` in its update section and checks the answer.
    async fn update(
        &self,
        name: &str,
        class: u16,
        ttl: u32,
        value: &str,
    ) -> Result<(), LetsEncryptError> {
        let id: u16 = rand::random();
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let (message, request_mac) = self.request(id, now, name, class, ttl, value)?;
        let answer = tokio::time::timeout(self.timeout, self.exchange(&message))
            .await
            .map_err(|_| self.error(format!("no answer within {:?}", self.timeout)))?
            .map_err(|e| self.error(e))?;
        self.check_answer(id, &request_mac, &answer)
    }

    /// The signed message and its MAC.
    fn request(
        &self,
        id: u16,
        now: u64,
        name: &str,
        class: u16,
        ttl: u32,
        value: &str,
    ) -> Result<(Vec<u8>, Vec<u8>), LetsEncryptError> {
        let mut message = Vec::with_capacity(256);
        put_u16(&mut message, id);
        put_u16(&mut message, FLAGS_UPDATE);
        for count in [1, 0, 1, 0] {
            put_u16(&mut message, count);
        }
        put_name(&mut message, &self.zone).map_err(|e| self.error(e))?;
        put_u16(&mut message, TYPE_SOA);
        put_u16(&mut message, CLASS_IN);
        put_name(&mut message, name).map_err(|e| self.error(e))?;
        put_u16(&mut message, TYPE_TXT);
        put_u16(&mut message, class);
        message.extend_from_slice(&ttl.to_be_bytes());
        let text = value.as_bytes();
        let Ok(length) = u8::try_from(text.len()) else {
            return Err(self.error("the TXT value is longer than 255 bytes"));
        };
        put_u16(&mut message, u16::from(length) + 1);
        message.push(length);
        message.extend_from_slice(text);

        let mac = self.sign(&[], &message, now, 0)?;
        let mut rdata = Vec::with_capacity(64 + mac.len());
        put_name(&mut rdata, self.algorithm.name()).map_err(|e| self.error(e))?;
        put_u48(&mut rdata, now);
        put_u16(&mut rdata, FUDGE);
        put_u16(&mut rdata, u16::try_from(mac.len()).unwrap_or(u16::MAX));
        rdata.extend_from_slice(&mac);
        put_u16(&mut rdata, id);
        put_u16(&mut rdata, 0); // error
        put_u16(&mut rdata, 0); // other len
        put_name(&mut message, &self.key_name).map_err(|e| self.error(e))?;
        put_u16(&mut message, TYPE_TSIG);
        put_u16(&mut message, CLASS_ANY);
        message.extend_from_slice(&0u32.to_be_bytes());
        put_u16(&mut message, u16::try_from(rdata.len()).unwrap_or(u16::MAX));
        message.extend_from_slice(&rdata);
        // ARCOUNT: the TSIG record.
        message[10..12].copy_from_slice(&1u16.to_be_bytes());
        Ok((message, mac))
    }

    /// The TSIG MAC (RFC 8945 §4.3.3) of `message` (without its TSIG record), preceded by
    /// the request's MAC when signing or checking an answer.
    fn sign(
        &self,
        request_mac: &[u8],
        message: &[u8],
        time: u64,
        error: u16,
    ) -> Result<Vec<u8>, LetsEncryptError> {
        let mut context = hmac::Context::with_key(&self.key);
        if !request_mac.is_empty() {
            context.update(
                &u16::try_from(request_mac.len())
                    .unwrap_or(u16::MAX)
                    .to_be_bytes(),
            );
            context.update(request_mac);
        }
        context.update(message);
        let mut variables = Vec::with_capacity(64);
        put_name(&mut variables, &self.key_name).map_err(|e| self.error(e))?;
        put_u16(&mut variables, CLASS_ANY);
        variables.extend_from_slice(&0u32.to_be_bytes());
        put_name(&mut variables, self.algorithm.name()).map_err(|e| self.error(e))?;
        put_u48(&mut variables, time);
        put_u16(&mut variables, FUDGE);
        put_u16(&mut variables, error);
        put_u16(&mut variables, 0);
        context.update(&variables);
        Ok(context.sign().as_ref().to_vec())
    }

    async fn exchange(&self, message: &[u8]) -> std::io::Result<Vec<u8>> {
        let mut stream = tokio::net::TcpStream::connect(self.server).await?;
        let length =
            u16::try_from(message.len()).map_err(|_| std::io::Error::other("message too long"))?;
        let mut framed = Vec::with_capacity(message.len() + 2);
        framed.extend_from_slice(&length.to_be_bytes());
        framed.extend_from_slice(message);
        stream.write_all(&framed).await?;
        let length = stream.read_u16().await?;
        let mut answer = vec![0; usize::from(length)];
        stream.read_exact(&mut answer).await?;
        Ok(answer)
    }

    /// The answer matches the request, says NOERROR, and carries a TSIG that verifies.
    fn check_answer(
        &self,
        id: u16,
        request_mac: &[u8],
        answer: &[u8],
    ) -> Result<(), LetsEncryptError> {
        let parsed = parse_answer(answer).ok_or_else(|| self.error("malformed answer"))?;
        if parsed.id != id {
            return Err(self.error("the answer's id does not match the request"));
        }
        if let Some(tsig) = &parsed.tsig
            && tsig.error != 0
        {
            return Err(self.error(format!(
                "the server refused the TSIG signature: {}",
                rcode_name(tsig.error)
            )));
        }
        if parsed.rcode != 0 {
            return Err(self.error(format!("update refused: {}", rcode_name(parsed.rcode))));
        }
        let tsig = parsed
            .tsig
            .ok_or_else(|| self.error("the answer is not signed"))?;
        let mut unsigned = answer[..tsig.start].to_vec();
        unsigned[10..12].copy_from_slice(&parsed.arcount.saturating_sub(1).to_be_bytes());
        let expected = self.sign(request_mac, &unsigned, tsig.time, tsig.error)?;
        let mac_ok = expected.len() == tsig.mac.len()
            && aws_lc_rs::constant_time::verify_slices_are_equal(&expected, &tsig.mac).is_ok();
        if !mac_ok {
            return Err(self.error("the answer's TSIG signature does not verify"));
        }
        Ok(())
    }

    fn error(&self, message: impl std::fmt::Display) -> LetsEncryptError {
        LetsEncryptError::dns(self.server, message)
    }
}

#[async_trait::async_trait]
impl DnsProvider for Rfc2136Provider {
    async fn publish(&self, name: &str, value: &str) -> Result<(), LetsEncryptError> {
        self.update(name, CLASS_IN, self.ttl, value).await?;
        tracing::info!(module = "letsencrypt", record = name, server = %self.server, "dns-01 TXT record published");
        Ok(())
    }

    async fn remove(&self, name: &str, value: &str) -> Result<(), LetsEncryptError> {
        self.update(name, CLASS_NONE, 0, value).await?;
        tracing::debug!(module = "letsencrypt", record = name, server = %self.server, "dns-01 TXT record removed");
        Ok(())
    }
}

impl TsigAlgorithm {
    /// The algorithm's name in the TSIG record.
    fn name(self) -> &'static str {
        match self {
            TsigAlgorithm::HmacSha256 => "hmac-sha256",
            TsigAlgorithm::HmacSha512 => "hmac-sha512",
        }
    }
}

fn put_u16(out: &mut Vec<u8>, value: u16) {
    out.extend_from_slice(&value.to_be_bytes());
}

fn put_u48(out: &mut Vec<u8>, value: u64) {
    out.extend_from_slice(&value.to_be_bytes()[2..]);
}

/// `name` in wire form, lowercase, uncompressed (TSIG needs canonical names).
fn put_name(out: &mut Vec<u8>, name: &str) -> Result<(), String> {
    for label in name.trim_end_matches('.').split('.') {
        let Ok(length) = u8::try_from(label.len()) else {
            return Err(format!("{name:?}: a label is longer than 63 bytes"));
        };
        if length == 0 || length > 63 {
            return Err(format!(
                "{name:?}: a label is empty or longer than 63 bytes"
            ));
        }
        out.push(length);
        out.extend(label.bytes().map(|b| b.to_ascii_lowercase()));
    }
    out.push(0);
    Ok(())
}

/// What [`Rfc2136Provider::check_answer`] needs of an answer.
#[derive(Debug)]
struct Answer {
    id: u16,
    rcode: u16,
    arcount: u16,
    tsig: Option<Tsig>,
}

#[derive(Debug)]
struct Tsig {
    /// Where the TSIG record starts.
    start: usize,
    time: u64,
    mac: Vec<u8>,
    error: u16,
}

fn parse_answer(message: &[u8]) -> Option<Answer> {
    let u16_at = |at: usize| -> Option<u16> {
        Some(u16::from_be_bytes([
            *message.get(at)?,
            *message.get(at + 1)?,
        ]))
    };
    let id = u16_at(0)?;
    let rcode = u16_at(2)? & 0x000f;
    let (zocount, prcount, upcount, arcount) = (u16_at(4)?, u16_at(6)?, u16_at(8)?, u16_at(10)?);
    let mut at = 12;
    for _ in 0..zocount {
        at = skip_name(message, at)? + 4;
    }
    for _ in 0..u32::from(prcount) + u32::from(upcount) + u32::from(arcount) {
        let start = at;
        at = skip_name(message, at)?;
        let kind = u16_at(at)?;
        let rdlength = usize::from(u16_at(at + 8)?);
        let rdata = at + 10;
        at = rdata + rdlength;
        if at > message.len() {
            return None;
        }
        if kind == TYPE_TSIG {
            let mut p = skip_name(message, rdata)?;
            let time = message
                .get(p..p + 6)?
                .iter()
                .fold(0u64, |acc, b| (acc << 8) | u64::from(*b));
            p += 8; // time signed, fudge
            let mac_size = usize::from(u16_at(p)?);
            let mac = message.get(p + 2..p + 2 + mac_size)?.to_vec();
            p += 2 + mac_size + 2; // MAC, original id
            let error = u16_at(p)?;
            return Some(Answer {
                id,
                rcode,
                arcount,
                tsig: Some(Tsig {
                    start,
                    time,
                    mac,
                    error,
                }),
            });
        }
    }
    Some(Answer {
        id,
        rcode,
        arcount,
        tsig: None,
    })
}

/// The offset after the name at `at` (labels or a compression pointer).
fn skip_name(message: &[u8], mut at: usize) -> Option<usize> {
    loop {
        let length = *message.get(at)?;
        match length {
            0 => return Some(at + 1),
            l if l & 0xc0 == 0xc0 => return Some(at + 2),
            l => at += 1 + usize::from(l),
        }
    }
}

fn rcode_name(code: u16) -> String {
    match code {
        1 => "FORMERR".to_owned(),
        2 => "SERVFAIL".to_owned(),
        3 => "NXDOMAIN".to_owned(),
        4 => "NOTIMP".to_owned(),
        5 => "REFUSED".to_owned(),
        6 => "YXDOMAIN".to_owned(),
        7 => "YXRRSET".to_owned(),
        8 => "NXRRSET".to_owned(),
        9 => "NOTAUTH".to_owned(),
        10 => "NOTZONE".to_owned(),
        16 => "BADSIG".to_owned(),
        17 => "BADKEY".to_owned(),
        18 => "BADTIME".to_owned(),
        other => format!("rcode {other}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::TsigConfig;

    fn provider() -> Rfc2136Provider {
        Rfc2136Provider::new(&DnsConfig {
            server: "127.0.0.1:53".to_owned(),
            zone: "example.test".to_owned(),
            tsig: TsigConfig {
                name: "k".to_owned(),
                algorithm: TsigAlgorithm::HmacSha256,
                secret: modular_core::Secret::new("c2VjcmV0LXRzaWcta2V5".to_owned()),
            },
            ..DnsConfig::default()
        })
        .unwrap()
    }

    #[test]
    fn the_debug_form_names_the_key_but_never_its_secret() {
        let shown = format!("{:?}", provider());
        assert!(
            shown.contains("example.test") && shown.contains("key_name"),
            "{shown}"
        );
        assert!(!shown.contains("c2VjcmV0"), "{shown}");
    }

    #[test]
    fn a_request_parses_back_with_its_tsig_which_verifies() {
        let provider = provider();
        let (message, mac) = provider
            .request(
                7,
                1_700_000_000,
                "_acme-challenge.example.test",
                CLASS_IN,
                60,
                "v",
            )
            .unwrap();
        let parsed = parse_answer(&message).unwrap();
        assert_eq!((parsed.id, parsed.rcode, parsed.arcount), (7, 0, 1));
        let tsig = parsed.tsig.unwrap();
        assert_eq!(tsig.mac, mac);
        assert_eq!(tsig.time, 1_700_000_000);
        let mut unsigned = message[..tsig.start].to_vec();
        unsigned[10..12].copy_from_slice(&0u16.to_be_bytes());
        assert_eq!(provider.sign(&[], &unsigned, tsig.time, 0).unwrap(), mac);
    }

    #[test]
    fn names_are_written_lowercase_and_bad_labels_refused() {
        let mut out = Vec::new();
        put_name(&mut out, "A.Test.").unwrap();
        assert_eq!(out, b"\x01a\x04test\x00");
        assert!(put_name(&mut Vec::new(), "a..test").is_err());
    }
}
