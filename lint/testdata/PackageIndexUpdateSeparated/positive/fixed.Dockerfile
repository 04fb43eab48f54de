FROM debian:bookworm
RUN apt-get update && apt-get install -y curl

FROM alpine
RUN apk update && apk add curl
