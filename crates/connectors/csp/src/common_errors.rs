//! The "common errors" tables of both CSP guides, row by row: each failure as Microsoft reports
//! it (its wire shape) is recognised with Microsoft's code and a remedy that says what the guide
//! says to do. (The guides' "AD user not found" row is about single sign-on to a portal, which
//! deskbridge does not offer.)

use deskbridge_connector_entra::{from_auth, from_graph};
use deskbridge_graph::{GraphApiError, GraphError, GraphErrorClass};
use deskbridge_msauth::{AuthError, MicrosoftAuthError};
use deskbridge_partner::{PartnerApiError, PartnerError};
use deskbridge_source::SyncError;

use crate::settings::RelationshipType;
use crate::tenants::{access_failure, from_partner};

fn token_error(status: u16, code: u32, description: &str) -> AuthError {
    AuthError::Microsoft(Box::new(MicrosoftAuthError {
        status,
        error: "invalid_client".into(),
        error_description: format!("AADSTS{code}: {description}\r\nTrace ID: t\r\nCorrelation ID: c"),
        error_codes: vec![code],
        timestamp: None,
        trace_id: Some("t".into()),
        correlation_id: Some("c".into()),
        error_uri: None,
    }))
}

fn graph_error(status: u16, code: &str, message: &str) -> GraphError {
    GraphError::Api(Box::new(GraphApiError {
        status,
        code: code.into(),
        message: message.into(),
        request_id: Some("r".into()),
        client_request_id: None,
        date: None,
        request: "GET /v1.0/users".into(),
        retry_after: None,
        location: None,
        class: GraphErrorClass::classify(status, code),
    }))
}

/// (Microsoft's code, the remedy) of an upstream error.
fn said(error: &SyncError) -> (String, String) {
    (error.code(), error.remedy().unwrap_or_default())
}

fn a_tenant(error: &SyncError) -> (String, String) {
    let (code, _, remedy) = access_failure(
        "11111111-1111-4111-8111-111111111111",
        "Contoso Ltd",
        error,
        RelationshipType::Gdap,
    )
    .expect("recognised");
    (code, remedy)
}

#[test]
fn the_wrong_user_impersonation_permission_names_the_partner_center_api() {
    let (code, remedy) = said(&from_auth(&token_error(
        400,
        650_057,
        "Invalid resource. The client has requested access to a resource which is not listed in the requested \
         permissions in the client's application registration.",
    )));
    assert_eq!(code, "AADSTS650057");
    assert!(
        remedy.contains("fa3d9a0c-3fb0-42cc-9193-47c7ecd2edbd"),
        "{remedy}"
    );
    assert!(remedy.contains("user_impersonation"), "{remedy}");
}

#[test]
fn required_scopes_not_consented_say_to_grant_consent() {
    let (code, remedy) = said(&from_auth(&token_error(
        400,
        65_001,
        "The user or administrator has not consented to use the application.",
    )));
    assert_eq!(code, "AADSTS65001");
    assert!(remedy.contains("admin consent"), "{remedy}");
}

#[test]
fn forbidden_or_missing_customers_say_to_open_the_customer_list_with_that_account() {
    let error = PartnerError::Api(Box::new(PartnerApiError {
        status: 403,
        code: Some(900_103),
        description: "Forbidden".into(),
        data: vec![],
        source_name: Some("PartnerFD".into()),
        request_id: None,
        correlation_id: None,
        retry_after: None,
        request: "GET /v1/customers".into(),
        class: deskbridge_partner::PartnerErrorClass::Forbidden,
    }));
    let (code, remedy) = said(&from_partner(&error));
    assert_eq!(code, "PartnerCenter900103");
    assert!(remedy.contains("customer list"), "{remedy}");
}

#[test]
fn the_calling_application_error_says_to_grant_admin_consent_in_that_tenant() {
    let error = from_graph(&graph_error(
        401,
        "Authorization_IdentityNotFound",
        "The identity of the calling application could not be established.",
    ));
    let (code, remedy) = a_tenant(&error);
    assert_eq!(code, "Authorization_IdentityNotFound");
    assert!(remedy.contains("admin consent"), "{remedy}");
}

#[test]
fn a_secret_id_pasted_for_its_value_says_so() {
    let (code, remedy) = said(&from_auth(&token_error(
        401,
        7_000_215,
        "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, \
         not the client secret ID.",
    )));
    assert_eq!(code, "AADSTS7000215");
    assert!(
        remedy.contains("Value") && remedy.contains("Secret ID"),
        "{remedy}"
    );
}

#[test]
fn an_expired_secret_says_to_create_a_new_one() {
    let (code, remedy) = said(&from_auth(&token_error(
        401,
        7_000_222,
        "The provided client secret keys are expired.",
    )));
    assert_eq!(code, "AADSTS7000222");
    assert!(
        remedy.contains("expired") && remedy.contains("new secret"),
        "{remedy}"
    );
}

#[test]
fn insufficient_privileges_name_the_gdap_roles() {
    let error = from_graph(&graph_error(
        403,
        "Authorization_RequestDenied",
        "Insufficient privileges to complete the operation.",
    ));
    let (code, remedy) = a_tenant(&error);
    assert_eq!(code, "Authorization_RequestDenied");
    assert!(
        remedy.contains("AdminAgents") && remedy.contains("Directory Readers"),
        "{remedy}"
    );
}

#[test]
fn a_redirect_uri_mismatch_says_to_register_it() {
    let (code, remedy) = said(&from_auth(&token_error(
        400,
        50_011,
        "The redirect URI 'https://desk.example/auth/microsoft/callback' specified in the request does not match \
         the redirect URIs configured for the application.",
    )));
    assert_eq!(code, "AADSTS50011");
    assert!(remedy.contains("Redirect URIs"), "{remedy}");
}

#[test]
fn a_tenant_without_premium_sign_in_data_says_to_turn_the_dates_off() {
    let error = from_graph(&graph_error(
        403,
        "Authentication_RequestFromNonPremiumTenantOrB2CTenant",
        "Neither tenant is B2C or tenant doesn't have premium license",
    ));
    let (code, remedy) = said(&error);
    assert_eq!(code, "Authentication_RequestFromNonPremiumTenantOrB2CTenant");
    assert!(remedy.contains("P1 or P2") && remedy.contains("off"), "{remedy}");
}

#[test]
fn a_missing_service_principal_says_to_grant_admin_consent() {
    let error = from_auth(&token_error(
        400,
        7_000_229,
        "The client application 77777777-7777-4777-8777-777777777777 is missing service principal in the tenant \
         11111111-1111-4111-8111-111111111111.",
    ));
    let (code, remedy) = a_tenant(&error);
    assert_eq!(code, "AADSTS7000229");
    assert!(remedy.contains("admin consent"), "{remedy}");
}

#[test]
fn an_unreadable_or_expired_token_says_to_authorise_again() {
    let error = from_graph(&graph_error(
        401,
        "InvalidAuthenticationToken",
        "CompactToken parsing failed with error code: 80049217",
    ));
    let (code, remedy) = said(&error);
    assert_eq!(code, "InvalidAuthenticationToken");
    assert!(remedy.contains("authorised again"), "{remedy}");
    let expired = from_auth(&token_error(
        400,
        700_082,
        "The refresh token has expired due to inactivity.",
    ));
    assert!(said(&expired).1.contains("Sign in again"), "{expired:?}");
}
