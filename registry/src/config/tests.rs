//! The configuration's unit tests.
use super::*;

fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn reads_distributions_keys() {
    let c = Config::from_yaml(
        "version: 0.1\nhttp:\n  addr: 127.0.0.1:5001\n  secret: s\n  headers:\n    X-Content-Type-Options: [nosniff]\n\
         storage:\n  ks3:\n    bucket: b\n    chunksize: 5242880\n    secure: false\n  delete:\n    enabled: true\n  redirect:\n    disable: true\n  cache:\n    blobdescriptor: inmemory\n\
         auth:\n  htpasswd:\n    realm: r\n    path: /etc/htpasswd\nhealth:\n  storagedriver:\n    enabled: true\n",
    )
    .expect("valid");
    assert_eq!(c.addr, "127.0.0.1:5001");
    assert!(c.delete_enabled && c.redirect_disabled);
    let Storage::Ks3(p) = &c.storage else {
        panic!("ks3 expected")
    };
    assert_eq!(p.get("chunksize").map(String::as_str), Some("5242880"));
    assert_eq!(p.get("secure").map(String::as_str), Some("false"));
    assert_eq!(c.htpasswd.as_ref().map(|h| h.realm.as_str()), Some("r"));
    assert_eq!(
        c.headers,
        vec![("x-content-type-options".into(), "nosniff".into())]
    );
    // health.storagedriver is honoured now (interval 10s, threshold 1 by default).
    let h = c.storage_health.as_ref().expect("storage health check");
    assert_eq!((h.interval, h.threshold), (Duration::from_secs(10), 1));
    assert!(c.warnings.iter().any(|w| w.starts_with("storage.cache")));
}

#[test]
fn debug_health_log_and_drain_keys() {
    let c = Config::from_yaml(
        "http:\n  draintimeout: 10s\n  debug:\n    addr: 127.0.0.1:5001\n    prometheus:\n      enabled: true\n      path: /m\nhealth:\n  storagedriver:\n    enabled: true\n    interval: 1s\n    threshold: 2\nlog:\n  level: debug\n  formatter: json\n  fields:\n    service: registry\n    replicas: 3\n  accesslog:\n    disabled: true\n",
    )
    .expect("valid");
    assert_eq!(c.drain_timeout, Some(Duration::from_secs(10)));
    let d = c.debug.expect("debug");
    assert_eq!(
        (d.addr.as_str(), d.prometheus, d.prometheus_path.as_str()),
        ("127.0.0.1:5001", true, "/m")
    );
    let h = c.storage_health.expect("health");
    assert_eq!((h.interval, h.threshold), (Duration::from_secs(1), 2));
    assert_eq!(c.log.level.as_deref(), Some("debug"));
    assert!(c.log.json && c.log.access_log_disabled);
    assert_eq!(c.log.fields.len(), 2);
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    let off = Config::from_yaml("health:\n  storagedriver:\n    enabled: false\n").expect("valid");
    assert!(off.storage_health.is_none());
    let e = |y: &str| Config::from_yaml(y).expect_err(y).parameter;
    assert_eq!(e("log:\n  level: loud\n"), "log.level");
    assert_eq!(e("log:\n  formatter: xml\n"), "log.formatter");
    assert_eq!(
        e("http:\n  debug:\n    prometheus:\n      enabled: true\n"),
        "http.debug.addr"
    );
    assert_eq!(e("http:\n  draintimeout: soon\n"), "http.draintimeout");
}

#[test]
fn defaults_to_the_embedded_server() {
    let c = Config::from_yaml("").expect("empty is valid");
    assert_eq!(c.storage, Storage::Embedded);
    assert!(!c.delete_enabled && !c.redirect_disabled);
    assert_eq!(c.bind_addr(), "0.0.0.0:5000");
}

#[test]
fn environment_overrides_the_file() {
    let c = Config::from_yaml_and_env(
        "http:\n  addr: :5000\nstorage:\n  ks3:\n    bucket: file\n",
        &env(&[
            ("REGISTRY_HTTP_ADDR", "127.0.0.1:6000"),
            ("REGISTRY_STORAGE_DELETE_ENABLED", "true"),
            ("REGISTRY_STORAGE_KS3_BUCKET", "env"),
            ("REGISTRY_STORAGE_KS3_REGION", "ks3-cn-beijing"),
            ("REGISTRY_LIMITS_BODYTIMEOUT", "5s"),
            ("OTHER", "x"),
        ]),
    )
    .expect("valid");
    assert_eq!(c.addr, "127.0.0.1:6000");
    assert!(c.delete_enabled);
    assert_eq!(c.limits.body_timeout, Duration::from_secs(5));
    let Storage::Ks3(p) = &c.storage else {
        panic!("ks3 expected")
    };
    assert_eq!(p.get("bucket").map(String::as_str), Some("env"));
    assert_eq!(p.get("region").map(String::as_str), Some("ks3-cn-beijing"));
}

#[test]
fn bad_values_name_their_key() {
    let e = |y: &str| Config::from_yaml(y).expect_err(y).parameter;
    assert_eq!(
        e("storage:\n  delete:\n    enabled: yes please\n"),
        "storage.delete.enabled"
    );
    assert_eq!(
        e("storage:\n  redirect:\n    disable: 3\n"),
        "storage.redirect.disable"
    );
    assert_eq!(e("http:\n  addr: nowhere\n"), "http.addr");
    assert_eq!(
        e("storage:\n  filesystem:\n    rootdirectory: x\n"),
        "storage.filesystem.rootdirectory"
    );
    assert_eq!(
        e("storage:\n  filesystem:\n    rootdirectory: /x\n  ks3:\n    bucket: b\n"),
        "storage"
    );
    assert_eq!(e("storage:\n  s3:\n    bucket: b\n"), "storage.s3");
    assert_eq!(e("auth:\n  token:\n    realm: x\n"), "auth.token.service");
    assert_eq!(e("auth:\n  silly:\n    realm: x\n"), "auth.silly");
    assert_eq!(
        e("auth:\n  token:\n    realm: r\n    service: s\n    issuer: i\n"),
        "auth.token.rootcertbundle"
    );
    assert_eq!(
        e("auth:\n  token:\n    realm: r\n    service: s\n    issuer: i\n    rootcertbundle: /b\n  htpasswd:\n    realm: x\n    path: /p\n"),
        "auth"
    );
    assert_eq!(e("http:\n  tls:\n    key: /k\n"), "http.tls.certificate");
    assert_eq!(
        e("http:\n  tls:\n    certificate: /c\n    key: /k\n    minimumtls: ssl3\n"),
        "http.tls.minimumtls"
    );
    assert_eq!(
        e("http:\n  tls:\n    letsencrypt:\n      email: a@b\n"),
        "http.tls.letsencrypt"
    );
    assert_eq!(
        e("auth:\n  htpasswd:\n    realm: x\n"),
        "auth.htpasswd.path"
    );
    assert_eq!(e("limits:\n  bodytimeout: soon\n"), "limits.bodytimeout");
    assert_eq!(e("catalog:\n  maxentries: -1\n"), "catalog.maxentries");
    assert_eq!(e("- a\n- b\n"), "config");
    let env_bad =
        Config::from_yaml_and_env("", &env(&[("REGISTRY_STORAGE_DELETE_ENABLED", "maybe")]))
            .expect_err("bad env");
    assert_eq!(env_bad.parameter, "storage.delete.enabled");
}

#[test]
fn tls_and_token_sections() {
    let c = Config::from_yaml(
        "http:\n  tls:\n    certificate: /c.pem\n    key: /k.pem\n    clientcas: [/ca1.pem, /ca2.pem]\n    minimumtls: tls1.0\nauth:\n  token:\n    realm: https://auth/token\n    service: reg\n    issuer: iss\n    rootcertbundle: /b.pem\n    jwks: /j.json\n    autoredirect: true\n",
    )
    .expect("valid");
    let t = c.tls.expect("tls");
    assert_eq!(t.certificate, PathBuf::from("/c.pem"));
    assert_eq!(t.clientcas.len(), 2);
    assert_eq!(t.minimum, crate::tls::MinimumTls::Tls12);
    let k = c.token.expect("token");
    assert_eq!(
        (k.realm.as_str(), k.service.as_str(), k.issuer.as_str()),
        ("https://auth/token", "reg", "iss")
    );
    assert_eq!(k.jwks, Some(PathBuf::from("/j.json")));
    assert_eq!(c.warnings.len(), 2, "{:?}", c.warnings);
    assert!(c.warnings.iter().any(|w| w.contains("minimumtls")));
    assert!(c.warnings.iter().any(|w| w.contains("autoredirect")));
}

#[test]
fn debug_never_shows_parameter_values() {
    let c = Config::from_yaml("storage:\n  ks3:\n    secretkey: TOPSECRET\n").expect("valid");
    assert!(!format!("{c:?}").contains("TOPSECRET"));
}

#[test]
fn upload_purging_keys_defaults_and_environment() {
    let d = Config::from_yaml("").expect("valid").upload_purging;
    assert!(d.enabled && !d.dry_run);
    assert_eq!(d.age, Duration::from_secs(168 * 3600));
    assert_eq!(d.interval, Duration::from_secs(24 * 3600));
    assert_eq!(d.initial_delay, None);

    let c = Config::from_yaml(
        "storage:\n  maintenance:\n    uploadpurging:\n      enabled: true\n      age: 1h30m\n      interval: 90s\n      dryrun: true\n      initialdelay: 0s\n    readonly:\n      enabled: false\n",
    )
    .expect("valid");
    let p = &c.upload_purging;
    assert!(p.enabled && p.dry_run);
    assert_eq!(p.age, Duration::from_secs(5400));
    assert_eq!(p.interval, Duration::from_secs(90));
    assert_eq!(p.initial_delay, Some(Duration::ZERO));
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);

    let c = Config::from_yaml_and_env(
        "storage:\n  maintenance:\n    uploadpurging:\n      enabled: true\n",
        &env(&[
            (
                "REGISTRY_STORAGE_MAINTENANCE_UPLOADPURGING_ENABLED",
                "false",
            ),
            ("REGISTRY_STORAGE_MAINTENANCE_UPLOADPURGING_AGE", "2h"),
            ("REGISTRY_STORAGE_MAINTENANCE_UPLOADPURGING_DRYRUN", "true"),
        ]),
    )
    .expect("valid");
    assert!(!c.upload_purging.enabled && c.upload_purging.dry_run);
    assert_eq!(c.upload_purging.age, Duration::from_secs(7200));

    let e = |y: &str| Config::from_yaml(y).expect_err(y).parameter;
    assert_eq!(
        e("storage:\n  maintenance:\n    uploadpurging:\n      age: a week\n"),
        "storage.maintenance.uploadpurging.age"
    );
    assert_eq!(
        e("storage:\n  maintenance:\n    uploadpurging:\n      interval: 0s\n"),
        "storage.maintenance.uploadpurging.interval"
    );
    let ro = Config::from_yaml("storage:\n  maintenance:\n    readonly:\n      enabled: true\n")
        .expect("valid");
    assert!(ro.read_only);
    assert!(!Config::from_yaml("").expect("valid").read_only);
}

#[test]
fn gc_keys_defaults_and_environment() {
    let d = Config::from_yaml("").expect("valid").gc;
    assert!(!d.enabled && !d.dry_run && !d.delete_untagged);
    assert_eq!(d.min_age, Duration::from_secs(3600));
    assert_eq!(d.settle, Duration::from_secs(10));
    assert_eq!(d.interval, Duration::from_secs(24 * 3600));

    let c = Config::from_yaml_and_env(
        "storage:\n  maintenance:\n    gc:\n      enabled: true\n      interval: 1h\n      deleteuntagged: true\n      minage: 30m\n      settle: 2s\n      dryrun: true\n      initialdelay: 5s\n      color: blue\n",
        &env(&[("REGISTRY_STORAGE_MAINTENANCE_GC_SETTLE", "20s")]),
    )
    .expect("valid");
    let g = &c.gc;
    assert!(g.enabled && g.delete_untagged && g.dry_run);
    assert_eq!(g.interval, Duration::from_secs(3600));
    assert_eq!(g.min_age, Duration::from_secs(1800));
    assert_eq!(g.settle, Duration::from_secs(20), "the environment wins");
    assert_eq!(g.initial_delay, Some(Duration::from_secs(5)));
    assert_eq!(
        c.warnings,
        vec!["storage.maintenance.gc.color: unknown key, ignored".to_string()]
    );

    let e = |y: &str| Config::from_yaml(y).expect_err(y).parameter;
    assert_eq!(
        e("storage:\n  maintenance:\n    gc:\n      interval: 0s\n"),
        "storage.maintenance.gc.interval"
    );
    assert_eq!(
        e("storage:\n  maintenance:\n    gc:\n      settle: soon\n"),
        "storage.maintenance.gc.settle"
    );
}

#[test]
fn go_durations() {
    let d = |s: &str| parse_go_duration(s);
    assert_eq!(d("168h"), Some(Duration::from_secs(604_800)));
    assert_eq!(d("1h30m"), Some(Duration::from_secs(5400)));
    assert_eq!(d("1.5h"), Some(Duration::from_secs(5400)));
    assert_eq!(d("500ms"), Some(Duration::from_millis(500)));
    assert_eq!(d("0"), Some(Duration::ZERO));
    for bad in ["", "h", "10", "-1h", "1d", "1h-", "."] {
        assert_eq!(d(bad), None, "{bad}");
    }
}
