//! Tokens signed here with P-256 keys of certificates made here (rcgen): every rule of
//! the verifier, accepted and refused. RSA keys are exercised by the token server of the
//! integration tests (PyJWT).
use super::*;
use rcgen::{BasicConstraints, CertificateParams, DistinguishedName, IsCa, Issuer, KeyPair};
use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};

const NOW: i64 = 1_800_000_000;

struct Signer {
    key: KeyPair,
    cert: CertificateDer<'static>,
}

impl Signer {
    fn self_signed(cn: &str, ca: bool) -> Signer {
        let key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.distinguished_name = DistinguishedName::new();
        p.distinguished_name.push(rcgen::DnType::CommonName, cn);
        if ca {
            p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        }
        let cert = p.self_signed(&key).unwrap().der().clone();
        Signer { key, cert }
    }

    fn signed_by(cn: &str, ca: &Signer, ca_params_cn: &str) -> Signer {
        let key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.distinguished_name = DistinguishedName::new();
        p.distinguished_name.push(rcgen::DnType::CommonName, cn);
        let mut ip = CertificateParams::new(Vec::<String>::new()).unwrap();
        ip.distinguished_name = DistinguishedName::new();
        ip.distinguished_name
            .push(rcgen::DnType::CommonName, ca_params_cn);
        ip.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let issuer = Issuer::new(ip, &ca.key);
        let cert = p.signed_by(&key, &issuer).unwrap().der().clone();
        Signer { key, cert }
    }

    fn token(&self, header: serde_json::Value, claims: serde_json::Value) -> String {
        let enc = |v: &serde_json::Value| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).unwrap())
        };
        let signing_input = format!("{}.{}", enc(&header), enc(&claims));
        let rng = SystemRandom::new();
        let pair = EcdsaKeyPair::from_pkcs8(
            &ECDSA_P256_SHA256_FIXED_SIGNING,
            &self.key.serialize_der(),
            &rng,
        )
        .unwrap();
        let sig = pair.sign(&rng, signing_input.as_bytes()).unwrap();
        format!(
            "{signing_input}.{}",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sig.as_ref())
        )
    }

    fn x5c(&self, chain: &[&Signer]) -> serde_json::Value {
        let b64 = |c: &CertificateDer<'_>| base64::engine::general_purpose::STANDARD.encode(c);
        let mut v = vec![b64(&self.cert)];
        v.extend(chain.iter().map(|s| b64(&s.cert)));
        serde_json::json!({"alg": "ES256", "typ": "JWT", "x5c": v})
    }

    fn pem(&self) -> String {
        let b64 = base64::engine::general_purpose::STANDARD.encode(&self.cert);
        let lines: Vec<&str> = b64
            .as_bytes()
            .chunks(64)
            .map(|c| std::str::from_utf8(c).unwrap())
            .collect();
        format!(
            "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
            lines.join("\n")
        )
    }

    fn kid(&self) -> String {
        libtrust_kid(&spki_of(&self.cert).unwrap())
    }
}

fn claims(exp: i64) -> serde_json::Value {
    serde_json::json!({
        "iss": "auth.test", "sub": "alice", "aud": "registry.test",
        "exp": exp, "nbf": NOW - 10, "iat": NOW - 10,
        "access": [{"type": "repository", "name": "app", "actions": ["pull", "push"]},
                   {"type": "registry", "name": "catalog", "actions": ["*"]}]
    })
}

fn verifier(bundle: &[&Signer], jwks: Option<&str>) -> (TokenVerifier, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bundle.pem");
    std::fs::write(&path, bundle.iter().map(|s| s.pem()).collect::<String>()).unwrap();
    let jwks_path = jwks.map(|j| {
        let p = dir.path().join("jwks.json");
        std::fs::write(&p, j).unwrap();
        p
    });
    let v = TokenVerifier::new(TokenConfig {
        realm: "https://auth.test/token".into(),
        service: "registry.test".into(),
        issuer: "auth.test".into(),
        rootcertbundle: (!bundle.is_empty()).then_some(path),
        jwks: jwks_path,
    })
    .unwrap();
    (v, dir)
}

#[test]
fn an_x5c_chain_to_the_bundle_is_accepted_and_grants_its_access() {
    let ca = Signer::self_signed("token CA", true);
    let leaf = Signer::signed_by("token signer", &ca, "token CA");
    let (v, _d) = verifier(&[&ca], None);
    for chain in [vec![], vec![&ca]] {
        let t = leaf.token(leaf.x5c(&chain), claims(NOW + 300));
        let g = v.verify(&t, NOW).expect("valid token");
        assert_eq!(g.subject, "alice");
        assert!(g.allows("repository", "app", "pull") && g.allows("repository", "app", "push"));
        assert!(!g.allows("repository", "other", "pull"));
        assert!(!g.allows("repository", "app", "delete"));
        assert!(g.allows("registry", "catalog", "*"));
        let need = Need::repository("app", &["pull", "delete"]);
        assert_eq!(
            need.missing(&g),
            vec![("repository".into(), "app".into(), "delete".into())]
        );
        assert!(Need::Catalog.missing(&g).is_empty());
    }
}

#[test]
fn a_self_signed_certificate_of_the_bundle_and_kid_are_accepted() {
    let signer = Signer::self_signed("signer", false);
    let (v, _d) = verifier(&[&signer], None);
    let t = signer.token(signer.x5c(&[]), claims(NOW + 300));
    v.verify(&t, NOW).expect("a bundle certificate in x5c");
    let kid = signer.kid();
    assert_eq!(kid.len(), 59, "{kid}");
    assert_eq!(kid.split(':').count(), 12);
    let t = signer.token(
        serde_json::json!({"alg": "ES256", "kid": kid}),
        claims(NOW + 300),
    );
    v.verify(&t, NOW).expect("the libtrust kid of a bundle key");
    let t = signer.token(
        serde_json::json!({"alg": "ES256", "kid": "AAAA:BBBB"}),
        claims(NOW + 300),
    );
    assert!(v.verify(&t, NOW).is_err(), "an unknown kid");
}

#[test]
fn a_jwks_key_is_accepted_by_kid() {
    let signer = Signer::self_signed("jwk signer", false);
    let spki = spki_of(&signer.cert).unwrap();
    let PublicKey::Ec { point, .. } = spki_key(&spki).unwrap() else {
        panic!("an EC key")
    };
    let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
    let jwks = serde_json::json!({"keys": [{"kty": "EC", "crv": "P-256", "kid": "k1",
        "x": b64(&point[1..33]), "y": b64(&point[33..65])}]})
    .to_string();
    let (v, _d) = verifier(&[], Some(&jwks));
    let t = signer.token(
        serde_json::json!({"alg": "ES256", "kid": "k1"}),
        claims(NOW + 300),
    );
    v.verify(&t, NOW).expect("a JWKS key");
}

#[test]
fn foreign_expired_early_and_misaddressed_tokens_are_refused() {
    let ca = Signer::self_signed("token CA", true);
    let leaf = Signer::signed_by("token signer", &ca, "token CA");
    let stranger_ca = Signer::self_signed("other CA", true);
    let stranger = Signer::signed_by("other signer", &stranger_ca, "other CA");
    let (v, _d) = verifier(&[&ca], None);
    let refused = |t: &str, why: &str| {
        let e = v.verify(t, NOW).expect_err(why);
        eprintln!("{why}: {e}");
    };
    refused(
        &stranger.token(stranger.x5c(&[&stranger_ca]), claims(NOW + 300)),
        "signed by a chain outside the bundle",
    );
    // The leaf's x5c, but signed by another key.
    refused(
        &stranger.token(leaf.x5c(&[]), claims(NOW + 300)),
        "a signature by another key than the certificate's",
    );
    refused(
        &leaf.token(leaf.x5c(&[]), claims(NOW - 61)),
        "expired past the leeway",
    );
    v.verify(&leaf.token(leaf.x5c(&[]), claims(NOW - 59)), NOW)
        .expect("expired within the 60 s leeway");
    let mut early = claims(NOW + 300);
    early["nbf"] = serde_json::json!(NOW + 120);
    refused(&leaf.token(leaf.x5c(&[]), early), "not valid before nbf");
    let mut no_exp = claims(NOW + 300);
    no_exp.as_object_mut().unwrap().remove("exp");
    refused(&leaf.token(leaf.x5c(&[]), no_exp), "no exp");
    let mut iss = claims(NOW + 300);
    iss["iss"] = serde_json::json!("evil");
    refused(&leaf.token(leaf.x5c(&[]), iss), "another issuer");
    let mut aud = claims(NOW + 300);
    aud["aud"] = serde_json::json!("other.service");
    refused(&leaf.token(leaf.x5c(&[]), aud), "another audience");
    let mut aud_list = claims(NOW + 300);
    aud_list["aud"] = serde_json::json!(["x", "registry.test"]);
    v.verify(&leaf.token(leaf.x5c(&[]), aud_list), NOW)
        .expect("an aud array naming the service");
    // Tampered claims keep the old signature.
    let t = leaf.token(leaf.x5c(&[]), claims(NOW + 300));
    let mut parts: Vec<String> = t.split('.').map(str::to_string).collect();
    let mut c = claims(NOW + 300);
    c["access"][0]["name"] = serde_json::json!("other");
    parts[1] = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(c.to_string());
    refused(&parts.join("."), "claims changed after signing");
    let mut hdr = leaf.x5c(&[]);
    hdr["alg"] = serde_json::json!("RS256");
    refused(
        &leaf.token(hdr, claims(NOW + 300)),
        "an alg that does not fit the key",
    );
    for junk in ["", "a.b", "a.b.c.d", "!!.!!.!!", &"x".repeat(MAX_TOKEN + 1)] {
        assert!(v.verify(junk, NOW).is_err(), "junk {junk:.20}");
    }
}

#[test]
fn challenges_name_realm_service_scope_and_error() {
    let signer = Signer::self_signed("s", false);
    let (v, _d) = verifier(&[&signer], None);
    assert_eq!(
        v.challenge(&Need::Login, None),
        r#"Bearer realm="https://auth.test/token",service="registry.test""#
    );
    let need = Need::repository("a/b", &["pull", "push"]);
    assert_eq!(
        v.challenge(&need, Some("insufficient_scope")),
        r#"Bearer realm="https://auth.test/token",service="registry.test",scope="repository:a/b:pull,push",error="insufficient_scope""#
    );
    assert_eq!(Need::Catalog.scope().as_deref(), Some("registry:catalog:*"));
    let mount = Need::Repositories(vec![
        ("dst".into(), vec!["pull", "push"]),
        ("src".into(), vec!["pull"]),
    ]);
    assert_eq!(
        mount.scope().as_deref(),
        Some("repository:dst:pull,push repository:src:pull")
    );
}

#[test]
fn configuration_must_name_a_key_and_the_three_strings() {
    let e = TokenVerifier::new(TokenConfig::default()).unwrap_err();
    assert!(e.contains("auth.token.realm"), "{e}");
    let e = TokenVerifier::new(TokenConfig {
        realm: "r".into(),
        service: "s".into(),
        issuer: "i".into(),
        ..TokenConfig::default()
    })
    .unwrap_err();
    assert!(e.contains("rootcertbundle or jwks"), "{e}");
}

#[test]
fn base32_and_der_helpers() {
    assert_eq!(base32(b"foobar"), "MZXW6YTBOI");
    assert_eq!(base32(b""), "");
    assert_eq!(der_take(&[0x30, 0x82, 0xff], 0x30), None);
    assert_eq!(der_take(&[0x30, 0x01], 0x30), None);
    assert_eq!(
        der_take(&[0x30, 0x01, 7, 9], 0x30),
        Some((&[7u8][..], &[9u8][..]))
    );
    assert!(spki_key(&[0x30, 0x00]).is_err());
}
