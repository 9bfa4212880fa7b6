// Package seed holds the fixed identities both sandbox simulators are seeded
// with, so that e-mails match across the two systems and the demo and tests
// can act as each user through the vendor APIs.
package seed

const (
	// Hyperproof organisation and users.
	OrgID           = "0b7f4c3e-1f2a-4d5b-9c6d-7e8f9a0b1c2d"
	CreatorUserID   = "4a1d2c3b-5e6f-4a7b-8c9d-0e1f2a3b4c5d"
	AssigneeUserID  = "5b2e3d4c-6f7a-4b8c-9d0e-1f2a3b4c5d6e"
	CreatorEmail    = "casey.creator@example.com"
	CreatorGiven    = "Casey"
	CreatorSurname  = "Creator"
	AssigneeEmail   = "alice.assignee@example.com"
	AssigneeGiven   = "Alice"
	AssigneeSurname = "Assignee"
	ControlID       = "6c3f4e5d-7a8b-4c9d-8e0f-2a3b4c5d6e7f"
	ControlName     = "CC-7.2 Firewall rules are reviewed quarterly"
	LabelID         = "7d4a5f6e-8b9c-4d0e-9f1a-3b4c5d6e7f8a"

	// OAuth2 client credentials of the integration (a service-account client).
	IntegrationClientID     = "sandbox-integration"
	IntegrationClientSecret = "sandbox-integration-secret"
	// OAuth2 client credentials of a personal client of the creator: writes
	// made with it show as the creator. The demo and tests act as the creator
	// with these.
	CreatorClientID     = "sandbox-casey"
	CreatorClientSecret = "sandbox-casey-secret"

	// ServiceNow users (basic auth).
	SNIntegrationUser     = "hyperproof.integration"
	SNIntegrationPassword = "sandbox-integration-password"
	SNAssigneeUser        = "alice.assignee"
	SNAssigneePassword    = "sandbox-alice-password"
)
