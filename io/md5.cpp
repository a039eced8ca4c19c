#include "io/md5.hpp"

#include <openssl/evp.h>

#include <stdexcept>

namespace evoplast::io {

struct Md5::State {
  EVP_MD_CTX* ctx = nullptr;
};

Md5::Md5() : state_(std::make_unique<State>()) {
  state_->ctx = EVP_MD_CTX_new();
  if (!state_->ctx || EVP_DigestInit_ex(state_->ctx, EVP_md5(), nullptr) != 1)
    throw std::runtime_error("OpenSSL: cannot initialise MD5");
}

Md5::~Md5() { EVP_MD_CTX_free(state_->ctx); }

void Md5::update(const void* data, std::size_t bytes) {
  EVP_DigestUpdate(state_->ctx, data, bytes);
}

std::string Md5::hex() {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_DigestFinal_ex(state_->ctx, digest, &len);
  static const char* hexdigits = "0123456789abcdef";
  std::string out;
  for (unsigned i = 0; i < len; ++i) {
    out += hexdigits[digest[i] >> 4];
    out += hexdigits[digest[i] & 15];
  }
  return out;
}

std::string md5_hex(const void* data, std::size_t bytes) {
  Md5 m;
  m.update(data, bytes);
  return m.hex();
}

}  // namespace evoplast::io
