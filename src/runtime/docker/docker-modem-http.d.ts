/** docker-modem's own HTTP module (a copy of follow-redirects' rules): how many redirects it follows. */
declare module 'docker-modem/lib/http.js' {
  const http: { maxRedirects: number };
  export default http;
}
