FROM alpine
RUN apk add --no-cache curl
RUN echo building
ARG GIT_SHA
LABEL revision=$GIT_SHA

FROM alpine
RUN apk add --no-cache git
ARG BUILD_NUMBER=0
