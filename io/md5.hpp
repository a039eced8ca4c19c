// MD5 through OpenSSL, for dataset checksums (not for security).
#pragma once
#include <cstddef>
#include <memory>
#include <string>

namespace evoplast::io {

class Md5 {
 public:
  Md5();
  ~Md5();
  Md5(const Md5&) = delete;
  Md5& operator=(const Md5&) = delete;
  void update(const void* data, std::size_t bytes);
  std::string hex();  // finishes the digest

 private:
  struct State;
  std::unique_ptr<State> state_;
};

std::string md5_hex(const void* data, std::size_t bytes);

}  // namespace evoplast::io
