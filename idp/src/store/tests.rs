use super::GrantKind;
use crate::secret::Assertion;
use serde_json::json;

fn enterprise() -> GrantKind {
    GrantKind::Enterprise {
        scope: Some("read".into()),
        idp: Box::new(crate::token::EnterpriseIdp {
            issuer: "https://idp.example".into(),
            token_endpoint: url::Url::parse("https://idp.example/token").unwrap(),
            client: crate::client::Client::public("app"),
        }),
        id_token: Some(Assertion::new("id-token")),
    }
}

#[test]
fn every_grant_kind_reads_back_as_written() {
    for kind in [
        GrantKind::AuthorizationCode,
        GrantKind::ClientCredentials { scope: None },
        GrantKind::ClientCredentials {
            scope: Some("a b".into()),
        },
        GrantKind::JwtBearer {
            scope: None,
            assertion: Some(Assertion::new("workload")),
        },
        GrantKind::JwtBearer {
            scope: Some("x".into()),
            assertion: None,
        },
        enterprise(),
    ] {
        let text = serde_json::to_string(&kind).unwrap();
        let back: GrantKind = serde_json::from_str(&text).unwrap();
        assert_eq!(back, kind, "{text}");
    }
}

#[test]
fn grant_kinds_stored_before_read_the_same() {
    // The stored shape: the kind under "grant", its fields beside it.
    let read = |v: serde_json::Value| serde_json::from_value::<GrantKind>(v);
    assert_eq!(
        read(json!({"grant": "authorization_code"})).unwrap(),
        GrantKind::AuthorizationCode
    );
    assert_eq!(
        read(json!({"grant": "client_credentials", "scope": "s"})).unwrap(),
        GrantKind::ClientCredentials {
            scope: Some("s".into())
        }
    );
    assert_eq!(
        read(json!({"scope": "s", "grant": "jwt_bearer"})).unwrap(),
        GrantKind::JwtBearer {
            scope: Some("s".into()),
            assertion: None
        }
    );
}

#[test]
fn a_grant_kind_that_cannot_be_read_says_why() {
    let read = |v: serde_json::Value| serde_json::from_value::<GrantKind>(v).unwrap_err();
    assert!(read(json!({"grant": "implicit"}))
        .to_string()
        .contains("unknown variant `implicit`"));
    assert!(read(json!({"grant": "enterprise"}))
        .to_string()
        .contains("missing field `idp`"));
    assert!(read(json!({"scope": "s"}))
        .to_string()
        .contains("missing field `grant`"));
}
