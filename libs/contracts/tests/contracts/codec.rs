use orderflow_contracts::users::{
    CredentialsRecord, RegisterUser, UpdateUserProfile, UserCommand, UserCredentials, UserEvent, UserRegistered,
};
use orderflow_contracts::{Codec, CodecError, Contract, Family};

#[tokio::test]
async fn every_schema_registers_and_messages_round_trip() {
    orderflow_testkit::init_tracing();
    let registry = orderflow_testkit::registry::spawn_registry().await;
    let codec = Codec::new(&registry.url);
    codec.register_all().await.expect("register every schema");

    let register = RegisterUser {
        user_id: "u-1".into(),
        email: "ada@example.com".into(),
        password_hash: "$argon2id$v=19$m=19456,t=2,p=1$abc$def".into(),
        first_name: "Ada".into(),
        last_name: "Lovelace".into(),
    };
    let bytes = codec.encode(&register).await.expect("encode");
    assert_eq!(bytes[0], 0, "Confluent magic byte");
    let decoded: UserCommand = codec.decode(Some(&bytes)).await.expect("decode");
    assert_eq!(decoded, UserCommand::Register(register));
    assert_eq!(decoded.name(), "RegisterUser");

    let update = UpdateUserProfile { user_id: "u-1".into(), first_name: None, last_name: Some("King".into()) };
    let decoded: UserCommand = codec.decode(Some(&codec.encode(&update).await.expect("encode"))).await.expect("decode");
    assert_eq!(decoded, UserCommand::UpdateProfile(update));

    let event = UserRegistered {
        user_id: "u-1".into(),
        email: "ada@example.com".into(),
        first_name: "Ada".into(),
        last_name: "Lovelace".into(),
        roles: vec!["user".into()],
        version: 1,
        registered_at: 1_700_000_000_123,
    };
    let decoded: UserEvent = codec.decode(Some(&codec.encode(&event).await.expect("encode"))).await.expect("decode");
    assert_eq!(decoded, UserEvent::Registered(event));

    let credentials = UserCredentials {
        user_id: "u-1".into(),
        email: "ada@example.com".into(),
        password_hash: "$argon2id$secret".into(),
        roles: vec!["user".into()],
        active: true,
        version: 1,
    };
    assert!(!format!("{credentials:?}").contains("secret"), "Debug never shows the hash");
    let bytes = codec.encode(&credentials).await.expect("encode");
    let decoded: CredentialsRecord = codec.decode(Some(&bytes)).await.expect("decode");
    assert_eq!(decoded, CredentialsRecord::Credentials(credentials));

    // A message of another family is refused by name, not misread.
    let error = codec.decode::<UserEvent>(Some(&bytes)).await.expect_err("credentials are not an event");
    assert!(matches!(error, CodecError::UnknownType { .. }), "{error}");
    // Garbage is named as such.
    let error = codec.decode::<UserEvent>(Some(b"{\"json\":true}")).await.expect_err("not Avro");
    assert!(matches!(error, CodecError::Malformed(_)), "{error}");
    assert!(!error.is_transient());
    // An unknown schema id is a bad message, not a reason to retry forever.
    let error = codec.decode::<UserEvent>(Some(&[0, 0, 0, 9, 99, 2])).await.expect_err("unknown id");
    assert!(!error.is_transient(), "{error}");

    let subjects = subjects(&registry.url).await;
    for schema in orderflow_contracts::all_schemas() {
        assert!(subjects.contains(&schema.full_name.to_owned()), "{} registered", schema.full_name);
    }
    assert_eq!(UserRegistered::FULL_NAME, "orderflow.users.events.UserRegistered");
}

async fn subjects(url: &str) -> Vec<String> {
    reqwest::get(format!("{url}/subjects")).await.expect("GET /subjects").json().await.expect("a JSON list")
}
