import "url-polyfill";
