// The HTML of GET / (see src/serve/status_page.cpp).
#pragma once

namespace liber::serve {

const char* status_page_html();

}  // namespace liber::serve
