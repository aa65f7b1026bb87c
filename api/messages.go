package api

// Response bodies. Field names are the wire names.

// ApplyTokenResponse is the body of a successful ApplyToken.
type ApplyTokenResponse struct {
	RequestId string
	Token     string
}

// QueryTokenResponse is the body of QueryToken. The fields after
// TokenStatus are tokenmq's extension, present only when TokenStatus is true.
type QueryTokenResponse struct {
	RequestId   string
	TokenStatus bool
	TokenId     string `json:",omitempty"`
	Actions     string `json:",omitempty"`
	Resources   string `json:",omitempty"`
	ExpireTime  int64  `json:",omitempty"` // Unix ms
	AccessKeyId string `json:",omitempty"`
	ClientId    string `json:",omitempty"` // comma-separated, as stored; absent: any client ID
}

// RevokeTokenResponse is the body of a successful RevokeToken.
type RevokeTokenResponse struct {
	RequestId string
}

// TokenInfo is one token in a ListTokens page: metadata, never the token.
type TokenInfo struct {
	TokenId    string
	Name       string
	Actions    string
	Resources  string // comma-separated, as stored
	ClientId   string `json:",omitempty"` // comma-separated, as stored; absent: any client ID
	ExpireTime int64  // Unix ms
	CreateTime int64  // Unix ms
	Revoked    bool
}

// ListTokensResponse is the body of a successful ListTokens. NextToken is
// empty on the last page.
type ListTokensResponse struct {
	RequestId string
	Tokens    []TokenInfo
	NextToken string
}

// URocketMQToken is the Token object of GetURocketMQTokenResponse.
type URocketMQToken struct {
	TokenId               string
	ServiceId             string
	Name                  string
	Type                  string // R, W or R,W
	AllowProduceTopicList []string
	AllowConsumeTopicList []string
	TopicProducePerm      string // allow or deny
	TopicConsumePerm      string // allow or deny
	AKSK                  AKSK
	CreateTime            int64 // Unix seconds
	ModifyTime            int64 // Unix seconds
	// Extension: the token's state and expiry.
	Status     string // valid, expired or revoked
	ExpireTime int64  // Unix seconds
}

// AKSK carries the token (SecretKey) when Display=true, else a mask.
type AKSK struct {
	AccessKey string
	SecretKey string
}

// GetURocketMQTokenResponse is the body of GetURocketMQToken (always HTTP 200).
type GetURocketMQTokenResponse struct {
	Action  string
	RetCode int
	Message string
	Token   *URocketMQToken `json:",omitempty"`
}

// errorBody is the Alibaba error body: every field a string.
type errorBody struct {
	RequestId string
	HostId    string
	Code      string
	Message   string
	Recommend string
}

// RevocationInfo is one entry of the revocation feed.
type RevocationInfo struct {
	Seq        uint64
	TokenId    string
	RevokeTime int64 // Unix ms
	ExpireTime int64 // Unix ms
}

// ListRevocationsResponse is the body of ListRevocations: the revocations of
// the instance after the position asked for, and the position to ask after
// next (NextSeq). Reset says the log restarted below that position.
type ListRevocationsResponse struct {
	RequestId   string
	Revocations []RevocationInfo
	Kicks       []KickInfo `json:",omitempty"` // KickClient's kicks of the instance's client IDs
	NextSeq     uint64
	Head        uint64 // the log's last position when the call began
	Reset       bool
}

// ExplainAccessResponse is the body of ExplainAccess: whether the token may
// publish to or subscribe to Topic, which resource decides, or why not.
type ExplainAccessResponse struct {
	RequestId   string
	Allowed     bool
	TokenId     string `json:",omitempty"`
	TokenStatus string // valid, expired, revoked or unknown
	Resource    string `json:",omitempty"`
	Level       int    `json:",omitempty"` // when denied: the level where the closest resource stops matching
	Reason      string
}
