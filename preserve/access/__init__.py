"""Access: users and roles, the rules that decide a request for a copy, requests and their approval, access
copies (DIPs) made from a verified AIP, and the access log. Every change is an event in the catalog's chain."""
