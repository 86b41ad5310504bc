// SPDX-License-Identifier: Apache-2.0
#include <catch2/catch.hpp>
#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>

#include <nlohmann/json.hpp>

#include "lib/source/gcs_oauth.hpp"
#include "lib/source/gcs_source.hpp"
#include "lib/source/http_util.hpp"

using namespace cdi;
using namespace cdi::source::gcs;

TEST_CASE("gs:// URLs: bucket, object with slashes, endpoint choice", "[gcs]") {
  auto a = parse_object_url("gs://my-bucket/dir/sub/disk.qcow2", "", "");
  REQUIRE(a);
  CHECK(a->endpoint == "https://storage.googleapis.com");
  CHECK(a->bucket == "my-bucket");
  CHECK(a->object == "dir/sub/disk.qcow2");
  CHECK(a->display() == "gs://my-bucket/dir/sub/disk.qcow2");
  // STORAGE_EMULATOR_HOST as host:port means plain http; a URL is taken as is.
  CHECK(parse_object_url("gs://b/o", "", "localhost:4443")->endpoint == "http://localhost:4443");
  CHECK(parse_object_url("gs://b/o", "", "https://emu:9000/")->endpoint == "https://emu:9000");
  // --gcs-endpoint wins over the emulator variable.
  CHECK(parse_object_url("gs://b/o", "http://127.0.0.1:1/", "emu:2")->endpoint == "http://127.0.0.1:1");
  CHECK(parse_object_url("GS://b/o", "", "")->bucket == "b");
}

TEST_CASE("http(s) URLs: that host is the endpoint, the path is BUCKET/OBJECT", "[gcs]") {
  auto a = parse_object_url("https://storage.example.com:8443/bkt/images/disk.img", "http://ignored", "");
  REQUIRE(a);
  CHECK(a->endpoint == "https://storage.example.com:8443");
  CHECK(a->bucket == "bkt");
  CHECK(a->object == "images/disk.img");
}

TEST_CASE("GCS URLs without a bucket or object are refused", "[gcs]") {
  for (const char* u : {"gs://", "gs://bucket", "gs://bucket/", "gs:///obj", "http://host", "http://host/bucket",
                        "ftp://host/b/o", "/local/path"}) {
    auto r = parse_object_url(u, "", "");
    INFO(u);
    REQUIRE(!r);
    CHECK(r.error().code() == Errc::invalid_argument);
  }
  auto r = parse_object_url("gs://b/o", "not a url", "");
  REQUIRE(!r);
  CHECK(r.error().code() == Errc::invalid_argument);
}

TEST_CASE("object names are percent-encoded for the XML and JSON APIs", "[gcs]") {
  ObjectLocation loc{"http://e", "b", "dir/a b+c%.img"};
  CHECK(xml_object_url(loc, "") == "http://e/b/dir/a%20b%2Bc%25.img");
  CHECK(xml_object_url(loc, "1234") == "http://e/b/dir/a%20b%2Bc%25.img?generation=1234");
  CHECK(json_metadata_url(loc) == "http://e/storage/v1/b/b/o/dir%2Fa%20b%2Bc%25.img");
  CHECK(cdi::source::http::percent_encode("AZaz09-._~", false) == "AZaz09-._~");
}

TEST_CASE("GCS error bodies: the JSON message or the XML Code and Message", "[gcs]") {
  CHECK(error_text(R"({"error":{"code":404,"message":"No such object: b/o"}})") == "No such object: b/o");
  CHECK(error_text("<?xml version='1.0'?><Error><Code>NoSuchKey</Code><Message>The specified key does not exist."
                   "</Message></Error>") == "NoSuchKey: The specified key does not exist.");
  CHECK(error_text("<Error><Code>AccessDenied</Code></Error>") == "AccessDenied");
  CHECK(error_text("plain text") == "");
  CHECK(error_text(R"({"other":1})") == "");
}

TEST_CASE("base64url: RFC 4648 vectors without padding, URL alphabet", "[gcs]") {
  CHECK(base64url("") == "");
  CHECK(base64url("f") == "Zg");
  CHECK(base64url("fo") == "Zm8");
  CHECK(base64url("foo") == "Zm9v");
  CHECK(base64url("foob") == "Zm9vYg");
  CHECK(base64url("fooba") == "Zm9vYmE");
  CHECK(base64url("foobar") == "Zm9vYmFy");
  CHECK(base64url("\xfb\xff\xbf") == "-_-_");
}

namespace {

struct TestKey {
  std::string private_pem, public_pem;
};

TestKey make_rsa_key() {
  EVP_PKEY* k = EVP_RSA_gen(2048);
  REQUIRE(k);
  BIO* priv = BIO_new(BIO_s_mem());
  BIO* pub = BIO_new(BIO_s_mem());
  REQUIRE(PEM_write_bio_PrivateKey(priv, k, nullptr, nullptr, 0, nullptr, nullptr) == 1);
  REQUIRE(PEM_write_bio_PUBKEY(pub, k) == 1);
  auto text = [](BIO* b) {
    char* p = nullptr;
    long n = BIO_get_mem_data(b, &p);
    return std::string(p, static_cast<size_t>(n));
  };
  TestKey t{text(priv), text(pub)};
  BIO_free(priv);
  BIO_free(pub);
  EVP_PKEY_free(k);
  return t;
}

std::string b64url_decode(std::string s) {
  for (char& c : s) c = c == '-' ? '+' : c == '_' ? '/' : c;
  while (s.size() % 4) s += '=';
  std::string out(s.size() / 4 * 3, '\0');
  int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()), reinterpret_cast<const unsigned char*>(s.data()),
                          static_cast<int>(s.size()));
  REQUIRE(n >= 0);
  size_t pad = (s.back() == '=') + (s[s.size() - 2] == '=');
  out.resize(static_cast<size_t>(n) - pad);
  return out;
}

bool verify_rs256(const std::string& public_pem, const std::string& input, const std::string& sig) {
  BIO* b = BIO_new_mem_buf(public_pem.data(), static_cast<int>(public_pem.size()));
  EVP_PKEY* k = PEM_read_bio_PUBKEY(b, nullptr, nullptr, nullptr);
  BIO_free(b);
  REQUIRE(k);
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  bool ok = EVP_DigestVerifyInit(ctx, nullptr, EVP_sha256(), nullptr, k) == 1 &&
            EVP_DigestVerify(ctx, reinterpret_cast<const unsigned char*>(sig.data()), sig.size(),
                             reinterpret_cast<const unsigned char*>(input.data()), input.size()) == 1;
  EVP_MD_CTX_free(ctx);
  EVP_PKEY_free(k);
  return ok;
}

std::string key_json(const std::string& private_pem) {
  return nlohmann::json{{"type", "service_account"},
                        {"project_id", "p"},
                        {"private_key_id", "kid-1"},
                        {"private_key", private_pem},
                        {"client_email", "sa@p.iam.gserviceaccount.com"},
                        {"token_uri", "https://oauth2.example/token"}}
      .dump();
}

}  // namespace

TEST_CASE("service account key files: fields, defaults, refusals", "[gcs]") {
  auto k = parse_service_account_key(key_json("PEM"));
  REQUIRE(k);
  CHECK(k->client_email == "sa@p.iam.gserviceaccount.com");
  CHECK(k->private_key_id == "kid-1");
  CHECK(k->token_uri == "https://oauth2.example/token");
  auto d = parse_service_account_key(R"({"type":"service_account","client_email":"a@b","private_key":"x"})");
  REQUIRE(d);
  CHECK(d->token_uri == "https://oauth2.googleapis.com/token");
  auto user = parse_service_account_key(R"({"type":"authorized_user","client_id":"x"})");
  REQUIRE(!user);
  CHECK(user.error().code() == Errc::unsupported);
  auto nokey = parse_service_account_key(R"({"type":"service_account","client_email":"a@b"})");
  REQUIRE(!nokey);
  CHECK(nokey.error().code() == Errc::invalid_argument);
  CHECK(nokey.error().what().find("private_key") != std::string::npos);
  CHECK(!parse_service_account_key("not json"));
}

TEST_CASE("the JWT-bearer assertion: header, claims, RS256 signature over header.claims", "[gcs]") {
  auto tk = make_rsa_key();
  auto key = parse_service_account_key(key_json(tk.private_pem));
  REQUIRE(key);
  auto jwt = sign_jwt(*key, k_read_only_scope, 1700000000, 3600);
  REQUIRE(jwt);
  auto d1 = jwt->find('.'), d2 = jwt->rfind('.');
  REQUIRE(d1 != d2);
  CHECK(jwt->find_first_of("+/=") == std::string::npos);
  auto header = nlohmann::json::parse(b64url_decode(jwt->substr(0, d1)));
  CHECK(header["alg"] == "RS256");
  CHECK(header["typ"] == "JWT");
  CHECK(header["kid"] == "kid-1");
  auto claims = nlohmann::json::parse(b64url_decode(jwt->substr(d1 + 1, d2 - d1 - 1)));
  CHECK(claims["iss"] == "sa@p.iam.gserviceaccount.com");
  CHECK(claims["aud"] == "https://oauth2.example/token");
  CHECK(claims["scope"] == "https://www.googleapis.com/auth/devstorage.read_only");
  CHECK(claims["iat"] == 1700000000);
  CHECK(claims["exp"] == 1700003600);
  std::string sig = b64url_decode(jwt->substr(d2 + 1));
  CHECK(sig.size() == 256);
  CHECK(verify_rs256(tk.public_pem, jwt->substr(0, d2), sig));
  // Another key's public half does not verify it; a changed claim breaks the signature.
  auto other = make_rsa_key();
  CHECK(!verify_rs256(other.public_pem, jwt->substr(0, d2), sig));
  std::string tampered = jwt->substr(0, d2);
  tampered[d1 + 3] ^= 1;
  CHECK(!verify_rs256(tk.public_pem, tampered, sig));
}

TEST_CASE("a private key that is not RSA PEM is refused before any request", "[gcs]") {
  ServiceAccountKey k{"a@b", "-----BEGIN PRIVATE KEY-----\ngarbage\n-----END PRIVATE KEY-----\n", "", "http://t"};
  auto r = sign_jwt(k, k_read_only_scope, 0);
  REQUIRE(!r);
  CHECK(r.error().code() == Errc::invalid_argument);
  CHECK(r.error().what().find("garbage") == std::string::npos);
}
